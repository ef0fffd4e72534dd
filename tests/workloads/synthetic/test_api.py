"""Every method of the documented API exists and does what the docs say."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.workloads.synthetic.conftest import frame
from workloads.contracts.errors import UserError
from workloads.federation import privacy
from workloads.synthetic import (
    DataSite,
    FederatedGenerator,
    FederatedTrainingSimulator,
    ModelAggregator,
    QualityEvaluator,
    SecureAggregator,
    SiteConfig,
    create_federated_generator,
)
from workloads.synthetic.copula import CopulaModel


def _aged(name: str, n: int, age: int, seed: int) -> pd.DataFrame:
    data = frame(name, n, seed)
    data["age"] = age
    return data


def test_create_train_generate(three_sites: dict[str, pd.DataFrame]) -> None:
    generator = create_federated_generator(three_sites, method="gaussian_copula", seed=1)
    result = generator.train(rounds=1)
    assert result.n_sites == 3
    true_total = sum(len(d) for d in three_sites.values())
    assert result.total_samples == pytest.approx(true_total, rel=0.05)  # a DP estimate
    assert result.epsilon_spent == {name: pytest.approx(1.0) for name in three_sites}
    synthetic = generator.generate(2000)
    assert len(synthetic) == 2000 and "patient_id" not in synthetic
    assert QualityEvaluator(pd.concat(three_sites.values()), synthetic).overall_score > 0.85


def test_strategies_mean_whose_population_is_described() -> None:
    """Site a: 1,500 patients all aged 30; site b: 500 all aged 70."""
    sites = {"a": _aged("a", 1500, 30, 1), "b": _aged("b", 500, 70, 2)}
    generator = create_federated_generator(
        sites, aggregator=SecureAggregator(epsilon=math.inf), privacy_budget=math.inf, seed=2)
    generator.train()
    mean_age = {s: generator.generate(4000, strategy=s)["age"].mean()  # type: ignore[arg-type]
                for s in ("proportional", "uniform")}
    assert mean_age["proportional"] == pytest.approx(40, abs=1.5)  # 3:1 by size
    assert mean_age["uniform"] == pytest.approx(50, abs=1.5)  # 1:1 whatever the size
    weighted = generator.generate(4000, strategy="weighted", weights={"a": 1, "b": 3})
    assert weighted["age"].mean() == pytest.approx(60, abs=1.5)
    generator.set_site_weights({"a": 9, "b": 1})
    assert generator.generate(4000, strategy="weighted")["age"].mean() == pytest.approx(34, abs=1.5)
    with pytest.raises(UserError, match="unknown sites"):
        generator.set_site_weights({"zz": 1.0})
    with pytest.raises(UserError, match="strategy"):
        generator.generate(10, strategy="bogus")  # type: ignore[arg-type]
    with pytest.raises(UserError, match="weights are only used"):
        generator.generate(10, strategy="uniform", weights={"a": 1.0})


def test_train_again_charges_again_and_the_site_cap_refuses(
        three_sites: dict[str, pd.DataFrame]) -> None:
    generator = create_federated_generator(three_sites, privacy_budget=1.6, seed=3)
    generator.train()
    assert all(s.spent().releases == 2 for s in generator.sites.values())
    generator.train()  # a second synthesis: charged again (its guard's odometer)
    for site in generator.sites.values():
        assert site.spent().releases == 4
        assert site.spent().epsilon == pytest.approx(
            privacy.epsilon([*generator.aggregator.trainings[0].multipliers] * 2, 1e-6))
    with pytest.raises(UserError, match="no round completed"):  # a third would pass 1.6
        generator.train()
    assert all(s.spent().releases == 4 for s in generator.sites.values())


def test_secure_aggregator_parameters_are_used(three_sites: dict[str, pd.DataFrame]) -> None:
    two = {k: three_sites[k] for k in ("a", "b")}
    with pytest.raises(UserError, match="at least 3 must take part"):
        create_federated_generator(two, aggregator=SecureAggregator(min_sites=3)).train()
    g = create_federated_generator(two, aggregator=SecureAggregator(
        noise_scale=4.0, clip_threshold=2.0, epsilon=5.0, delta=1e-5))
    g.train()
    training = g.aggregator.trainings[-1]
    assert training.multipliers == (4.0, 4.0)
    assert training.clip == 2.0
    assert g.sites["a"].delta == 1e-5
    assert g.sites["a"].spent().epsilon == pytest.approx(privacy.epsilon([4.0, 4.0], 1e-5))
    with pytest.raises(UserError, match="spends epsilon"):  # it would cost more than 0.1
        create_federated_generator(two, aggregator=SecureAggregator(
            noise_scale=4.0, epsilon=0.1)).train()


def test_the_documented_classes_compose(three_sites: dict[str, pd.DataFrame],
                                        tmp_path: Path) -> None:
    generator = FederatedGenerator(aggregator=ModelAggregator(), method="gaussian_copula")
    for name, data in three_sites.items():
        config = SiteConfig(name=name, weight=1.0, privacy_budget=3.0, min_samples=100)
        generator.add_site(DataSite(name, data, config))
    with pytest.raises(UserError, match="already added"):
        generator.add_site(DataSite("a", three_sites["a"]))
    with pytest.raises(UserError, match="not been trained"):
        generator.generate(5)
    generator.train(rounds=2)  # the budget split over the rounds
    assert generator.sites["a"].spent().epsilon == pytest.approx(1.0, rel=1e-6)
    path = generator.save_metadata(tmp_path / "meta" / "federated_metadata.json")
    meta = json.loads(path.read_text())
    assert set(meta["sites"]) == {"a", "b", "c"}
    assert meta["sites"]["a"]["epsilon_spent"] == pytest.approx(1.0, rel=1e-6)
    assert meta["sites"]["a"]["delta"] == 1e-6
    assert [c["name"] for c in meta["schema"]][:2] == ["age", "variant_brca1"]
    assert meta["created"].startswith("20")
    assert meta["sites"]["a"]["rounds_taken_part"] == 2
    with pytest.raises(UserError, match="method"):
        FederatedGenerator(method="ctgan")


def test_data_site_local_model_and_min_samples(three_sites: dict[str, pd.DataFrame]) -> None:
    site = DataSite("a", three_sites["a"], SiteConfig("a", privacy_budget=2.0, min_samples=10))
    assert site.initialize(method="gaussian_copula") is site
    model = site.train_local(epsilon=1.0, seed=1)  # the site's own model, released under DP
    assert isinstance(model, CopulaModel)
    assert site.spent().epsilon == pytest.approx(1.0)
    assert set(model.sample(500, np.random.default_rng(0))["variant_tp53"]) <= {0, 1, 2}
    small = DataSite("s", three_sites["a"].head(50), SiteConfig("s", min_samples=100))
    generator = create_federated_generator({k: three_sites[k] for k in ("b", "c")})
    generator.add_site(small)
    result = generator.train()
    assert "s" in result.refused and result.n_sites == 2
    assert "fewer rows" in result.refused["s"]
    assert small.spent().releases == 0  # refused before anything was charged or released


@pytest.mark.slow  # stragglers wait out real deadlines (~15 s)
def test_simulator_iid_non_iid_failures_and_stragglers() -> None:
    data = pd.concat([frame("x", 3000, 7)], ignore_index=True)
    simulator = FederatedTrainingSimulator(n_sites=4, epsilon=3.0, seed=5)
    parts = simulator.setup_from_data(data)
    assert [len(p) for p in parts] == [750] * 4
    iid_share = np.std([p["variant_apoe4"].mean() for p in parts])
    parts = simulator.setup_non_iid(data, partition_column="variant_apoe4", alpha=0.3)
    assert sum(len(p) for p in parts) == 3000
    skew = np.std([p["variant_apoe4"].mean() for p in parts if len(p)])
    assert skew > 3 * iid_share  # Dirichlet(0.3) label skew
    simulator.setup_from_data(data)
    result = simulator.simulate_training(n_rounds=4, site_failure_rate=0.25,
                                         straggler_rate=0.2, straggler_delay=2.0)
    assert result["n_sites"] >= 2
    changed = 0
    for r in result["rounds"]:
        assert not set(r["failed"]) & set(r["invited"])  # a failed site is not invited
        assert not set(r["stragglers"]) & set(r["participants"])  # nor in the sums late
        changed += bool(r["failed"] or r["stragglers"])
    assert changed > 0
    # a failed site is not charged for that round; a straggler is (it released, too late)
    generator = simulator.generator
    assert generator is not None
    for name in simulator.site_names:
        invited = sum(name in r["invited"] for r in result["rounds"])
        summed = sum(name in r["participants"] for r in result["rounds"])
        releases = generator.sites[name].spent().releases  # 2 per round it released in
        assert 2 * summed <= releases <= 2 * invited
    synthetic = simulator.generate_synthetic(1000)
    assert simulator.evaluate(synthetic).column_shapes > 0.8
    with pytest.raises(UserError):
        simulator.simulate_training(n_rounds=1, site_failure_rate=1.5)


def test_every_site_down_is_an_error_not_an_empty_model() -> None:
    simulator = FederatedTrainingSimulator(n_sites=3, seed=1)
    simulator.setup_from_data(frame("x", 900, 1))
    with pytest.raises(UserError, match="no round completed"):
        simulator.simulate_training(n_rounds=2, site_failure_rate=1.0)


def test_quality_evaluator_handles_the_nan_pair_trends_case() -> None:
    rng = np.random.default_rng(0)
    weak = pd.DataFrame({"x": rng.normal(size=800), "y": rng.normal(size=800)})
    q = QualityEvaluator(weak, weak.sample(frac=1.0, random_state=1))
    assert q.pair_trends is None  # SDMetrics 0.32: NaN when no real pair is associated
    assert q.overall_score == q.column_shapes
    assert q.pair_trends_all is not None
    strong = weak.assign(y=weak["x"] + 0.1 * weak["y"])
    independent = strong.assign(y=rng.permutation(strong["y"].to_numpy()))
    q2 = QualityEvaluator(strong, independent)
    assert q2.pair_trends is not None and q2.pair_trends < 0.6
    assert q2.overall_score == pytest.approx((q2.column_shapes + q2.pair_trends) / 2)
    assert QualityEvaluator(strong, strong).overall_score == pytest.approx(1.0)
