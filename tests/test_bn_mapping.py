"""The shared TF1 batch norm -> Keras 3 BatchNormalization argument mapping (numerics §3-4)."""

import ast

import pytest

from migrate import bn_mapping as m
from migrate.context import call_arguments, literal_value


def mapped(call_source: str, api: str):
    call = ast.parse(call_source, mode="eval").body
    args, keywords = call_arguments(call)
    return m.map_batch_norm(api, args, keywords, literal_value)


def kwargs_text(mapping):
    return {k: (v.text if isinstance(v, m.Code) else ast.unparse(v)) for k, v in mapping.kwargs.items()}


def test_contrib_defaults_are_written_out_because_they_differ_from_keras():
    result = mapped("bn(x, is_training=t)", m.CONTRIB)
    assert kwargs_text(result) == {"momentum": "0.999", "epsilon": "0.001", "center": "True",
                                   "scale": "False"}
    assert ast.unparse(result.training) == "t"


def test_decay_becomes_momentum_not_one_minus_decay():
    result = mapped("bn(x, decay=0.95)", m.CONTRIB)
    assert kwargs_text(result)["momentum"] == "0.95"


def test_contrib_positional_arguments_follow_its_signature():
    result = mapped("bn(x, 0.9, True, True, 1e-5)", m.CONTRIB)
    assert kwargs_text(result) == {"momentum": "0.9", "epsilon": "1e-05", "center": "True",
                                   "scale": "True"}


def test_contrib_training_defaults_to_true_and_layers_to_false():
    assert mapped("bn(x)", m.CONTRIB).training.text == "True"
    assert mapped("bn(x)", m.LAYERS_FUNCTION).training.text == "False"


def test_nchw_becomes_axis_1_and_scope_becomes_name():
    result = mapped("bn(x, data_format='NCHW', scope='bn1')", m.CONTRIB)
    assert kwargs_text(result)["axis"] == "1"
    assert kwargs_text(result)["name"] == "'bn1'"


def test_activation_fn_becomes_a_following_activation():
    result = mapped("bn(x, activation_fn=tf.nn.relu)", m.CONTRIB)
    assert ast.unparse(result.activation) == "tf.nn.relu"
    assert "activation_fn" not in result.kwargs
    assert mapped("bn(x, activation_fn=None)", m.CONTRIB).activation is None


def test_param_initializers_dict_maps_to_keras_initializers():
    result = mapped("bn(x, param_initializers={'gamma': g, 'moving_variance': mv})", m.CONTRIB)
    assert kwargs_text(result)["gamma_initializer"] == "g"
    assert kwargs_text(result)["moving_variance_initializer"] == "mv"


@pytest.mark.parametrize("argument", ["virtual_batch_size=2", "adjustment=f", "reuse=True"])
def test_layers_arguments_without_keras_equivalent_are_reported(argument):
    result = mapped(f"bn(x, {argument})", m.LAYERS_FUNCTION)
    assert [a for a, _ in result.unsupported] == [argument.split("=")[0]]
    assert argument.split("=")[0] not in result.kwargs


@pytest.mark.parametrize("argument", ["zero_debias_moving_mean=True", "batch_weights=w",
                                      "variables_collections=c", "outputs_collections=c"])
def test_contrib_arguments_without_keras_equivalent_are_reported(argument):
    result = mapped(f"bn(x, {argument})", m.CONTRIB)
    assert argument.split("=")[0] in [a for a, _ in result.unsupported]


def test_star_kwargs_cannot_be_mapped_statically():
    assert ("**kwargs" in [a for a, _ in mapped("bn(x, **params)", m.LAYERS_FUNCTION).unsupported])


def test_renorm_maps_in_keras_3_and_renorm_decay_becomes_renorm_momentum():
    result = mapped("bn(x, renorm=True, renorm_decay=0.9)", m.CONTRIB)
    assert kwargs_text(result)["renorm"] == "True"
    assert kwargs_text(result)["renorm_momentum"] == "0.9"
    assert result.fused == "never"  # renorm turns the fused kernel off


@pytest.mark.parametrize("call, api, fused", [
    ("bn(x)", m.LAYERS_FUNCTION, "rank"),
    ("bn(x, fused=True)", m.LAYERS_FUNCTION, "rank"),
    ("bn(x, fused=False)", m.LAYERS_FUNCTION, "never"),
    ("bn(x, virtual_batch_size=4)", m.LAYERS_FUNCTION, "never"),
    ("bn(x)", m.LAYERS_CLASS, "rank"),
    ("bn(x)", m.CONTRIB, "always"),
    ("bn(x, fused=False)", m.CONTRIB, "never"),
    ("bn(x, batch_weights=w)", m.CONTRIB, "never"),
])
def test_fused_is_recorded_because_it_decides_the_bessel_divergence(call, api, fused):
    assert mapped(call, api).fused == fused


def test_contrib_inline_updates_take_its_own_fused_path_with_python_decay():
    result = mapped("bn(x, updates_collections=None)", m.CONTRIB)
    assert result.updates_inline and result.float32_decay is False
    assert mapped("bn(x)", m.CONTRIB).float32_decay == "rank"


def test_trainable_false_and_non_literal_trainable_are_noted():
    assert any("inference mode" in n for n in mapped("bn(x, trainable=False)", m.LAYERS_FUNCTION).notes)
    assert any("is_training" in n for n in mapped("bn(x, trainable=t)", m.LAYERS_FUNCTION).notes)


def test_layers_arguments_pass_through_under_their_own_names():
    result = mapped("bn(x, axis=1, momentum=0.9, epsilon=1e-5, center=False, name='bn')",
                    m.LAYERS_FUNCTION)
    assert kwargs_text(result) == {"axis": "1", "momentum": "0.9", "epsilon": "1e-05",
                                   "center": "False", "name": "'bn'"}


def test_render_constructor():
    result = mapped("bn(x, decay=0.9)", m.CONTRIB)
    text = m.render_constructor(result, ast.unparse)
    assert text == ("tf.keras.layers.BatchNormalization(momentum=0.9, epsilon=0.001, center=True, "
                    "scale=False)")
