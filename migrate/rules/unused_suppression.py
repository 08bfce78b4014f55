from migrate.rules.base import Rule


class UnusedSuppression(Rule):
    """
    ## What it does
    Reports a `# tf-migrate: ignore[...]` comment that suppresses nothing: no finding
    with that code is reported on its line, the code is not a tf-migrate rule, or
    the rule is not enabled in this run (like ruff's RUF100).

    ## Why
    A stale suppression hides the next real finding on that line. Once a site is
    migrated, its suppression should go.

    ## Example
    ```python
    import tensorflow as tf
    x = tf.constant(1)  # tf-migrate: ignore[TFM101]   <- nothing to suppress here
    ```
    Remove the comment. Suppress TFM901 itself with `# tf-migrate: ignore[TFM901]`,
    or turn it off with `--ignore TFM901`. File-level `ignore-file` comments are not checked.
    A suppression inside a model function or training program that keeps the function out of
    its TFM300/TFM400 rewrite (bare, naming that code, or hiding a site finding on its line) is
    used, even when its line has no finding of its own.
    """

    code = "TFM901"
    name = "unused-suppression"
    summary = "a `# tf-migrate: ignore` comment that suppresses nothing"
    tokens = ()  # never runs as a rule: the runner checks suppressions after the rules
    checked_by_runner = True  # so pipeline-level tests (migrate_source) never see it

    def check(self, ctx):
        return ()
