"""`check` finds every batch-norm site of the ten TF1 acceptance programs in ../shared."""

from migrate.pipeline import Options, migrate_source
from migrate.rules import ALL_RULES

BN_SITE_CODES = {"TFM101", "TFM102", "TFM103", "TFM104", "TFM105"}

# Batch-norm sites per program, counted by reading each program: a site is one
# place in the source that builds a batch norm (a call, a class construction,
# or a slim layer that runs one through normalizer_fn).
EXPECTED_BN_SITES = {
    "cnn_update_ops": 2,
    "contrib_batch_norm": 1,  # in a loop
    "contrib_inplace_updates": 1,
    "python_bool_training": 2,
    "helper_blocks": 2,  # the helper's call and the head_bn class
    "gan_two_optimizers": 2,
    "seed_antipattern": 2,  # tf.layers + the Keras layer in the graph
    "forgot_update_ops": 1,
    "estimator_model_fn": 1,
    "slim_arg_scope": 2,  # conv1 and conv2 through arg_scope; conv3 overrides normalizer_fn=None
}
EXPECTED_UPDATE_FINDINGS = {
    "cnn_update_ops": {"TFM201", "TFM202"},
    "contrib_batch_norm": {"TFM201", "TFM202"},
    "contrib_inplace_updates": {"TFM106"},
    "python_bool_training": {"TFM201", "TFM202"},
    "helper_blocks": {"TFM201", "TFM202"},
    "gan_two_optimizers": {"TFM201", "TFM202"},
    "seed_antipattern": {"TFM201", "TFM202", "TFM204"},
    "forgot_update_ops": {"TFM206"},
    "estimator_model_fn": {"TFM201", "TFM202"},
    "slim_arg_scope": {"TFM205"},
}


def test_check_finds_every_batch_norm_site(acceptance_dir):
    programs = sorted(acceptance_dir.glob("*.py"))
    assert {p.stem for p in programs} == set(EXPECTED_BN_SITES)
    for program in programs:
        result = migrate_source(program.read_bytes(), program.name, ALL_RULES, Options())
        assert result.error is None
        sites = [f for f in result.findings if f.code in BN_SITE_CODES]
        assert len(sites) == EXPECTED_BN_SITES[program.stem], (program.stem, sites)
        other = {f.code for f in result.findings if not f.code.startswith(("TFM3", "TFM4"))} - BN_SITE_CODES - {"TFM107"}
        assert other == EXPECTED_UPDATE_FINDINGS[program.stem], program.stem
