"""GET /admin/experiment's answer from the store's counts (definitions: docs/operations.md).

A variant's hit rate is hits / impressions: of the answers reported shown, the share that was
then credited with at least one interaction; each answer is one trial. Its interval is the
95% Wilson interval, and each serving variant but the control is tested against the control
with the pooled two-proportion z test (service/experiment_stats.py). Shadow variants serve
nobody: they report their rankings and their mean overlap with the served answers instead.
"""

from __future__ import annotations

from collections.abc import Callable

from service.experiment_stats import two_proportion_test, wilson_interval
from service.schemas import Comparison, ExperimentAnswer, Interval, VariantReport
from service.served_model import ServedModel
from service.stores.experiment import Counts
from service.variants import Split, Variant


def report(name: str, split: Split, window_s: int, counts: dict[str, Counts],
           serving: Callable[[Variant], ServedModel | None]) -> ExperimentAnswer:
    control = counts[split.control.name]
    variants = []
    for variant in split.variants:
        c = counts[variant.name]
        hits = min(c.hits, c.impressions)  # one write of two lost to an outage cannot
        rate = hits / c.impressions if c.impressions else None  # make a rate above 1
        interval = Interval(**dict(zip(("low", "high"), wilson_interval(hits, c.impressions)))) \
            if c.impressions else None
        comparison = None
        if not variant.shadow and variant != split.control and c.impressions \
                and control.impressions:
            z, p = two_proportion_test(min(control.hits, control.impressions),
                                       control.impressions, hits, c.impressions)
            comparison = Comparison(z=z, p_value=p, n=c.impressions,
                                    n_control=control.impressions)
        model = serving(variant)
        variants.append(VariantReport(
            name=variant.name, shadow=variant.shadow, share=variant.share,
            model_version=model.version if model else None, users=c.users, answers=c.answers,
            impressions=c.impressions, hits=hits, attributed=c.attributed, hit_rate=rate,
            interval=interval, vs_control=comparison, shadow_answers=c.shadow_answers,
            mean_overlap=c.overlap_sum / c.shadow_answers if c.shadow_answers else None))
    return ExperimentAnswer(experiment=name, control=split.control.name,
                            attribution_window_s=window_s, variants=variants)
