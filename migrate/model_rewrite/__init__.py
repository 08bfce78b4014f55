"""Rewrite TF1 model-building functions into Keras 3 Model/Layer classes.

`analysis` decides which functions build models and how their parameters are
used; `convert` turns one function into a class (layers created once in
`__init__`, called in `call` with an explicit `training` flag); `layers` maps
each TF1 layer API onto its Keras 3 layer. The rule that drives them is
`migrate.rules.model_classes`.
"""
