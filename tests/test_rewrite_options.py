"""--fused-bn exact, --safe-only and --preserve-bugs change what the rewrites emit."""

from migrate.pipeline import Options, migrate_source
from migrate.rules import ALL_RULES
from tests.conftest import ACCEPTANCE, FIXTURES

import pytest

PROGRAM = (FIXTURES / "programs" / "cnn_bn.py").read_bytes()


def migrate(source: bytes, **options):
    result = migrate_source(source, "prog.py", ALL_RULES, Options(rewrite=True, **options))
    assert result.error is None, result.error
    return result


def test_default_emits_plain_keras_batch_norm_and_reports_the_bounded_divergence():
    result = migrate(PROGRAM)
    assert "TF1FusedCompatBatchNormalization" not in result.new_text
    assert any(f.code == "TFM302" and f.rewrite_class == "bounded" for f in result.findings)


def test_fused_bn_exact_emits_the_compat_layer_once_in_the_file():
    result = migrate(PROGRAM, fused_bn="exact")
    text = result.new_text
    assert text.count("class TF1FusedCompatBatchNormalization(") == 1
    assert text.count("= TF1FusedCompatBatchNormalization(momentum=0.9, fused_ranks=(4, 5)") == 2
    assert not any(f.code == "TFM302" for f in result.findings)
    again = migrate(result.new_bytes, fused_bn="exact")
    assert not again.changed


def test_safe_only_leaves_bounded_rewrites_marked():
    result = migrate(PROGRAM, safe_only=True)
    assert "# tf-migrate: TFM301 left unchanged: a bounded rewrite, skipped by --safe-only" in result.new_text
    assert "def classifier(images, is_training):" in result.new_text
    assert any(f.code == "TFM301" and not f.fixed for f in result.findings)


def test_safe_only_with_exact_fused_bn_applies_everything():
    result = migrate(PROGRAM, safe_only=True, fused_bn="exact")
    assert "class Classifier(tf.keras.Model)" in result.new_text
    assert "def train_step(" in result.new_text


def test_preserve_bugs_keeps_never_updated_statistics_with_momentum_one(acceptance_dir):
    source = (acceptance_dir / "forgot_update_ops.py").read_bytes()
    fixed = migrate(source)
    assert "momentum=1.0" not in fixed.new_text
    assert any(f.code == "TFM206" and f.rewrite_class == "behaviour-change" for f in fixed.findings)
    kept = migrate(source, preserve_bugs=True)
    assert kept.new_text.count("momentum=1.0") == 1  # built in a loop: one site
    assert any(f.code == "TFM304" and f.rewrite_class == "exact" for f in kept.findings)
    # No behaviour change is left (the input rank is not known statically, so the batch norms
    # stay "bounded": TF1 fused them only had the input been 4-D).
    assert not any(f.rewrite_class == "behaviour-change" for f in kept.findings)


def test_a_suppression_on_the_def_line_keeps_the_function_unconverted():
    source = PROGRAM.replace(b"def classifier(images, is_training):",
                             b"def classifier(images, is_training):  # tf-migrate: ignore[TFM300]")
    result = migrate(source)
    text = result.new_text or source.decode()
    assert "def classifier(images, is_training):  # tf-migrate: ignore[TFM300]" in text
    assert "TFM301" not in text  # suppressed, not failed: no marker
    assert "class Classifier" not in text
    # The training program calls the unconverted function: it is left as well, with its reason.
    assert "# tf-migrate: TFM401" in text
