"""Rule registry. One rule per module; codes are stable and documented by `tf-migrate rules`.

TFM1xx: batch-norm layers and their arguments.
TFM2xx: the UPDATE_OPS training pattern.
TFM3xx: the model rewrite (functions into Keras classes).
TFM4xx: the training-loop rewrite (Session loops into train steps).
TFM9xx: about tf-migrate itself (suppression comments).

A rule whose rewrite needs libcst is listed here by its libcst-free half (`*_findings.py`:
code, tokens, `check` on `ast`); its rewriting subclass is loaded only by runs that rewrite
(`RewriteRule.implementation`), so `check` never imports libcst (tests/test_startup.py).
"""

from __future__ import annotations

import importlib
from typing import Iterable, List, Optional, Sequence, Type

from migrate.rules.app_flags import AppFlags
from migrate.rules.base import Rule, RewriteRule
from migrate.rules.batch_norm_as_normalizer import BatchNormAsNormalizer
from migrate.rules.contrib_batch_norm import ContribBatchNorm
from migrate.rules.control_dependencies_around_batch_norm import ControlDependenciesAroundBatchNorm
from migrate.rules.estimator_model_fn_findings import EstimatorModelFnFindings
from migrate.rules.forgotten_update_ops import ForgottenUpdateOps
from migrate.rules.group_update_ops import GroupUpdateOps
from migrate.rules.implicit_update_ops import ImplicitUpdateOps
from migrate.rules.keras_batch_norm_in_graph import KerasBatchNormInGraph
from migrate.rules.layers_batch_normalization import LayersBatchNormalization
from migrate.rules.layers_batch_normalization_class import LayersBatchNormalizationClass
from migrate.rules.model_classes_findings import ModelClassesFindings
from migrate.rules.train_steps_findings import TrainStepsFindings
from migrate.rules.summary_v1 import SummaryV1
from migrate.rules.unmappable_batch_norm_argument import UnmappableBatchNormArgument
from migrate.rules.update_ops_collection import UpdateOpsCollection
from migrate.rules.update_ops_control_dependencies import UpdateOpsControlDependencies
from migrate.rules.updates_collections_none import UpdatesCollectionsNone
from migrate.rules.unused_suppression import UnusedSuppression

ALL_RULES: List[Type[Rule]] = [
    LayersBatchNormalization,
    LayersBatchNormalizationClass,
    ContribBatchNorm,
    BatchNormAsNormalizer,
    KerasBatchNormInGraph,
    UpdatesCollectionsNone,
    UnmappableBatchNormArgument,
    UpdateOpsCollection,
    UpdateOpsControlDependencies,
    GroupUpdateOps,
    ControlDependenciesAroundBatchNorm,
    ImplicitUpdateOps,
    ForgottenUpdateOps,
    EstimatorModelFnFindings,  # before ModelClasses: it hands them a model_fn taken apart
    ModelClassesFindings,
    TrainStepsFindings,  # after ModelClasses: it calls the classes that rule creates
    AppFlags,
    SummaryV1,
    UnusedSuppression,  # checked by the runner (migrate/suppressions.py), never run as a rule
]

__all__ = ["ALL_RULES", "Rule", "RewriteRule", "select_rules", "rule_by_code", "load_rule_module"]


class UnknownRuleCode(ValueError):
    pass


def load_rule_module(name: str) -> List[Type[Rule]]:
    """Rules defined in an importable module (its `RULES` list), for extensions and tests."""
    module = importlib.import_module(name)
    return list(getattr(module, "RULES"))


def _matches(code: str, selectors: Iterable[str]) -> bool:
    return any(code.startswith(s) for s in selectors)


def select_rules(select: Optional[Sequence[str]] = None, ignore: Optional[Sequence[str]] = None,
                 extra: Sequence[Type[Rule]] = ()) -> List[Type[Rule]]:
    """Rules chosen by code prefixes, ruff style: `--select TFM1 --ignore TFM107`."""
    candidates = list(ALL_RULES) + list(extra)
    known = [r.code for r in candidates]
    for selector in list(select or []) + list(ignore or []):
        if selector != "ALL" and not any(code.startswith(selector) for code in known):
            raise UnknownRuleCode(f"unknown rule code or prefix: {selector}")
    chosen = candidates
    if select and "ALL" not in select:
        chosen = [r for r in chosen if _matches(r.code, select)]
    if ignore:
        chosen = [r for r in chosen if not _matches(r.code, ignore)]
    return chosen


def rule_by_code(code: str, extra: Sequence[Type[Rule]] = ()) -> Type[Rule]:
    """The rule reporting `code`: its own code, or one of the codes it reports besides."""
    for rule in list(ALL_RULES) + list(extra):
        if rule.code == code.upper() or code.upper() in getattr(rule, "reported_codes", {}):
            return rule
    raise UnknownRuleCode(f"unknown rule code: {code}")
