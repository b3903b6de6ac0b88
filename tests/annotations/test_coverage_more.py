"""The per-model means, the within-sample mean tau and the system-level Pearson hold their coverage in
simulations with a known truth (reduced, seeded versions of `benchmarks/ci_coverage_more.py`).

Each check failed with the intervals these replaced: the percentile bootstrap of a mean covered about
88 % at 10 values, and the percentile interval of the observed system-level r covered 23.5-38.5 % of
the population r with 10 systems (items random, systems fixed). Bounds sit about two Monte Carlo SEs
below 95 %.
"""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from annotations import agreement as A
from annotations import metaeval as M
from annotations import simulation as B


def test_a_mean_gets_students_t_interval() -> None:
    values = np.array([1, 2, 3, 4, 5, 4, 3, 2.5, 3.5, 4.5])
    result = A.mean_bootstrap(values=values, seed=1)
    half = stats.t.ppf(0.975, 9) * values.std(ddof=1) / np.sqrt(10)
    assert result.ci_low == pytest.approx(values.mean() - half)
    assert result.ci_high == pytest.approx(values.mean() + half)


def test_a_mean_of_ten_items_is_covered_in_95_percent_of_studies() -> None:
    rng = np.random.default_rng(3)
    population = float(B.item_means(rng.normal(0, 1, 1_000_000), 3, rng).mean())
    hits = []
    for d in range(1500):
        res = A.mean_bootstrap(values=B.item_means(rng.normal(0, 1, 10), 3, rng), resamples=200, seed=d)
        hits.append(res.ci_low <= population <= res.ci_high)
    # Percentile bootstrap: 87.5 %; t interval: 94-95 % (SE 0.6 points at 1500 studies).
    assert np.mean(hits) >= 0.93, np.mean(hits)


def test_the_within_sample_mean_tau_gets_students_t_interval() -> None:
    rng = np.random.default_rng(5)
    x, h = B.grouped_world(12, 4, 3, rng)
    common = list(range(48))
    res = M._grouped(common=common, human=h.ravel(), shown={"m": x.ravel()}, groups={u: u // 4 for u in common},
                     resamples=100, seed=1, confidence=0.95)["metrics"]["m"]
    taus = np.array([stats.kendalltau(x[g], h[g]).statistic for g in range(12)
                     if np.ptp(x[g]) and np.ptp(h[g])])
    assert res["tau"] == pytest.approx(taus.mean())
    assert res["ci"] == pytest.approx(list(A.mean_interval(taus)))


def _system_world(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    world = np.random.default_rng(seed)
    mu, bias = world.normal(0, 0.4, 10), world.normal(0, 0.2, 10)
    rng = np.random.default_rng(seed + 1)
    pop_h = np.array([B.item_means(rng.normal(m, 1, 200_000), 3, rng).mean() for m in mu])
    return mu, bias, pop_h, float(stats.pearsonr(mu + bias, pop_h).statistic)


def test_the_system_level_pearson_interval_covers_the_population_systems_correlation() -> None:
    mu, bias, _, truth = _system_world(20250111)  # the benchmark's 10-system world: population r 0.968
    rng = np.random.default_rng(11)
    sys_of = np.repeat(np.arange(10), 20)
    common = list(range(200))
    labels = {u: f"s{sys_of[u]}" for u in common}
    hits, undefined = [], 0
    for d in range(150):
        t = mu[sys_of] + rng.normal(0, 1, 200)
        x = t + bias[sys_of] + rng.normal(0, B.METRIC_SD, 200)
        res = M._system_level(common=common, human=B.item_means(t, 3, rng), shown={"m": x}, systems=labels,
                              resamples=200, seed=d, confidence=0.95)["metrics"]["m"]
        if res["pearson"]["ci"] is None:
            undefined += 1
            assert res["pearson"]["reason"].startswith("no interval")
            continue
        low, high = res["pearson"]["ci"]
        hits.append(low <= truth <= high)
    # The percentile interval of the observed r: 38.5 %; the noise-corrected r: 96 % (400 studies).
    assert np.mean(hits) >= 0.90, (np.mean(hits), undefined)
    assert undefined <= 10


def test_system_level_rank_statistics_show_no_interval_and_say_why() -> None:
    mu, bias, _, _ = _system_world(20250111)
    rng = np.random.default_rng(2)
    sys_of = np.repeat(np.arange(10), 5)
    t = mu[sys_of] + rng.normal(0, 1, 50)
    common = list(range(50))
    res = M._system_level(common=common, human=B.item_means(t, 3, rng), shown={"m": t + bias[sys_of]},
                          systems={u: f"s{sys_of[u]}" for u in common}, resamples=50, seed=1,
                          confidence=0.95)["metrics"]["m"]
    assert res["kendall"]["ci"] is None and res["pairwise_accuracy_ci"] is None
    assert res["kendall"]["reason"] == res["pairwise_accuracy_reason"] == M.SYSTEM_RANK_NO_CI
    assert res["pairwise_accuracy"] is not None and res["kendall"]["r"] is not None


def test_system_level_pearson_has_no_interval_when_a_system_has_one_item() -> None:
    common = list(range(7))
    systems = {0: "a", 1: "a", 2: "b", 3: "b", 4: "c", 5: "c", 6: "d"}
    human = np.array([1.0, 2, 3, 4, 5, 4.5, 2])
    res = M._system_level(common=common, human=human, shown={"m": human + np.arange(7) * 0.1}, systems=systems,
                          resamples=50, seed=1, confidence=0.95)["metrics"]["m"]
    assert res["pearson"]["ci"] is None and "only 1 item(s)" in res["pearson"]["reason"]


def test_system_level_pearson_has_no_interval_below_ten_items_per_system() -> None:
    # 3 systems x 2 items: resampling 2 items often draws one twice and the noise looks like 0, so an
    # interval here was spuriously narrow ([0.85, 1.00] in review); from 10 items per system it is given.
    rng = np.random.default_rng(4)
    for per, expect_ci in ((2, False), (9, False), (10, True)):
        sys_of = np.repeat(np.arange(3), per)
        human = np.array([1.0, 3.0, 5.0])[sys_of] + rng.normal(0, 0.3, len(sys_of))
        metric = human + rng.normal(0, 0.3, len(sys_of))
        res = M._system_level(common=list(range(len(sys_of))), human=human, shown={"m": metric},
                              systems={u: f"s{s}" for u, s in enumerate(sys_of)}, resamples=50, seed=1,
                              confidence=0.95)["metrics"]["m"]["pearson"]
        assert (res["ci"] is not None) is expect_ci, (per, res)
        if not expect_ci:
            assert f"only {per} item(s)" in res["reason"] and "at least 10 per system" in res["reason"]


# --- comparative counting scores -------------------------------------------------------------------

def _bws_world(seed: int, samples: int = 10, per: int = 6):
    from annotations import comparative as C

    rng = np.random.default_rng(seed)
    effect = np.linspace(-0.5, 0.5, per)
    quality = (effect[None] + rng.normal(0, 0.8, (samples, per))).ravel()
    groups = {g: list(range(g * per, (g + 1) * per)) for g in range(samples)}
    design = C.design_generate(groups=groups, seed=int(rng.integers(1 << 31)))
    units = np.array([u.items for u in design.units])
    perceived = quality[units][None] + rng.normal(0, 1.0, (3, *units.shape))
    best = units[np.arange(len(units)), perceived.argmax(axis=2)]
    worst = units[np.arange(len(units)), perceived.argmin(axis=2)]
    choices = [C.Choice(unit=u, shown=tuple(units[u].tolist()), best=int(best[a, u]), worst=int(worst[a, u]),
                        annotator=a) for a in range(3) for u in range(len(units))]
    return choices, {i: i // per for i in range(samples * per)}


def test_a_descriptions_counting_interval_is_students_t_over_its_units() -> None:
    from annotations import comparative as C

    choices, groups = _bws_world(1)
    res = C.counting_scores(choices, groups=groups, resamples=100, seed=1)
    item = res.items[0]
    by_unit: dict = {}
    for c in choices:
        if item in c.shown:
            net, shown = by_unit.get(c.unit, (0, 0))
            by_unit[c.unit] = (net + (c.best == item) - (c.worst == item), shown + 1)
    net, app = np.array(list(by_unit.values()), dtype=float).T
    ratio, m = net.sum() / app.sum(), len(net)
    se = np.sqrt(((net - ratio * app) ** 2).sum() / app.mean() ** 2 / (m * (m - 1)))
    half = stats.t.ppf(0.975, m - 1) * se
    assert res.scores[0] == pytest.approx(ratio)
    assert [res.ci_low[0], res.ci_high[0]] == pytest.approx([max(ratio - half, -1), min(ratio + half, 1)])


def test_a_systems_counting_interval_covers_its_score_over_new_faces() -> None:
    """Faces random: the old interval (units resampled within fixed samples) covered 50 % here."""
    from annotations import comparative as C

    per = 6
    rng = np.random.default_rng(9)
    # Population score of each system: the pooled score over very many faces.
    big, big_groups = _bws_world(99, samples=800, per=per)
    truth = C.system_scores(big, system_of={i: i % per for i in big_groups}, groups=big_groups, resamples=0)
    truth_of = dict(zip(truth.systems, truth.counting, strict=True))
    hits = []
    for d in range(40):
        choices, groups = _bws_world(int(rng.integers(1 << 31)))
        res = C.system_scores(choices, system_of={i: i % per for i in groups}, groups=groups, resamples=50, seed=d,
                              bradley_terry_ci=False)
        low, high = res.counting_ci
        hits.extend(low[j] <= truth_of[s] <= high[j] for j, s in enumerate(res.systems))
    assert np.mean(hits) >= 0.88, np.mean(hits)


# --- classification tables -------------------------------------------------------------------------

def test_the_ccc_interval_is_fishers_z_with_a_jackknife_se() -> None:
    from inference import metrics as IM

    rng = np.random.default_rng(4)
    x, y = rng.normal(size=25), rng.normal(size=25)
    y = 0.6 * x + 0.5 * y + 0.2
    res = IM.ccc_bootstrap(x, y)
    loo = np.array([np.arctanh(IM.ccc(np.delete(x, i), np.delete(y, i))) for i in range(25)])
    se = np.sqrt(24 / 25 * ((loo - loo.mean()) ** 2).sum())
    half = stats.t.ppf(0.975, 24) * se
    z = np.arctanh(res["ccc"])
    assert [res["ci_low"], res["ci_high"]] == pytest.approx([np.tanh(z - half), np.tanh(z + half)])


def test_the_ccc_interval_covers_at_20_samples() -> None:
    """Bivariate normal, CCC 0.670: the percentile bootstrap covered 89.5 %, this interval 93.8 % (2000 sets)."""
    from inference import metrics as IM

    rng = np.random.default_rng(12)
    truth = 2 * 0.7 / (2 + 0.3**2)
    hits = []
    for d in range(1000):
        xy = rng.multivariate_normal([0, 0.3], [[1, 0.7], [0.7, 1]], 20)
        res = IM.ccc_bootstrap(xy[:, 0], xy[:, 1], resamples=300, seed=d)
        hits.append(res["ci_low"] <= truth <= res["ci_high"])
    assert np.mean(hits) >= 0.925, np.mean(hits)
