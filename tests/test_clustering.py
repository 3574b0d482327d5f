import numpy as np
import pytest
import skfuzzy

from forecaster.config import ClusterConfig
from forecaster.regimes.clusterer import fit_clusterer, volatility_order
from forecaster.regimes.fcm import FuzzyCMeans, membership_diagnostics, xie_beni


def three_blobs(seed=0, n=60):
    rng = np.random.default_rng(seed)
    centers = np.array([[0.0, 0.0], [5.0, 5.0], [0.0, 6.0]])
    return np.vstack([c + rng.normal(0, 0.5, (n, 2)) for c in centers])


def test_memberships_are_non_negative_and_rows_sum_to_one():
    fcm = FuzzyCMeans(3, random_state=1).fit(three_blobs())
    u = fcm.predict(np.random.default_rng(2).normal(2, 3, (50, 2)))
    assert u.shape == (50, 3)
    assert (u >= 0).all()
    np.testing.assert_allclose(u.sum(axis=1), 1.0, atol=1e-12)


def test_matches_skfuzzy_on_same_data_and_seed():
    x = three_blobs()
    fcm = FuzzyCMeans(3, m=2.0, error=1e-6, maxiter=1000, random_state=42).fit(x)
    xs = (x - x.mean(axis=0)) / x.std(axis=0)
    centers, u, *_, fpc = skfuzzy.cluster.cmeans(xs.T, 3, 2.0, error=1e-6, maxiter=1000, seed=42)
    np.testing.assert_allclose(fcm.centers_, centers, atol=1e-10)
    np.testing.assert_allclose(fcm.fpc_, fpc, atol=1e-10)
    new = np.random.default_rng(3).normal(2, 3, (20, 2))
    u_new, *_ = skfuzzy.cluster.cmeans_predict(
        ((new - x.mean(0)) / x.std(0)).T, centers, 2.0, error=1e-6, maxiter=100
    )
    np.testing.assert_allclose(fcm.predict(new), u_new.T, atol=1e-10)


def test_same_seed_same_centers_and_no_global_random_state_change():
    np.random.seed(123)
    expected_next = np.random.rand()
    np.random.seed(123)
    a = FuzzyCMeans(3, random_state=7).fit(three_blobs())
    assert np.random.rand() == expected_next  # cmeans(seed=...) would reseed numpy globally
    b = FuzzyCMeans(3, random_state=7).fit(three_blobs())
    np.testing.assert_array_equal(a.centers_, b.centers_)


def test_auto_picks_number_of_clusters_by_xie_beni():
    fcm = FuzzyCMeans("auto", random_state=0).fit(three_blobs())
    assert set(fcm.xie_beni_) == {2, 3, 4, 5, 6}
    assert fcm.n_clusters_ == min(fcm.xie_beni_, key=fcm.xie_beni_.get) == 3


def test_xie_beni_by_hand():
    x = np.array([[0.0], [1.0], [10.0]])
    centers = np.array([[0.5], [10.0]])
    u = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    # compactness 0.25 + 0.25 + 0 = 0.5; separation 9.5^2 = 90.25; N = 3
    assert xie_beni(x, centers, u, m=2) == pytest.approx(0.5 / (3 * 90.25))


def test_diagnostics_of_uniform_and_hard_memberships():
    uniform = membership_diagnostics(np.full((10, 4), 0.25))
    assert uniform["fpc"] == pytest.approx(0.25) and uniform["membership_entropy"] == pytest.approx(1.0)
    hard = membership_diagnostics(np.eye(4)[np.arange(10) % 4])
    assert hard["fpc"] == pytest.approx(1.0) and hard["mean_max_membership"] == pytest.approx(1.0)


def test_warns_loudly_when_memberships_are_near_uniform():
    # One blob in high dimension: FCM puts every center on the mean (the failure mode of raw returns).
    x = np.random.default_rng(0).normal(size=(300, 30))
    with pytest.warns(UserWarning, match="nearly uniform"):
        FuzzyCMeans(3, random_state=0).fit(x)


def test_round_trip_through_arrays_keeps_predictions():
    x = three_blobs()
    fcm = FuzzyCMeans(3).fit(x)
    again = FuzzyCMeans.from_arrays(fcm.to_arrays())
    np.testing.assert_array_equal(again.predict(x), fcm.predict(x))


def regime_descriptor_rows(seed=0, n=80):
    """Descriptor rows (cum_return, log_volatility) of three regimes: calm, normal, turbulent."""
    rng = np.random.default_rng(seed)
    centers = np.array([[0.02, -5.0], [-0.03, -4.0], [0.0, -3.0]])
    return np.vstack([c + rng.normal(0, [0.01, 0.1], (n, 2)) for c in centers])


def test_clusters_are_numbered_calmest_first_whatever_the_seed():
    x = regime_descriptor_rows()
    raw_orders, volatilities = set(), []
    for seed in range(6):
        config = ClusterConfig(n_clusters=3, descriptors=("cum_return", "log_volatility"), random_state=seed)
        raw = FuzzyCMeans(3, random_state=seed).fit(x)
        raw_orders.add(tuple(np.argsort(raw.descriptor_centers()[:, 1])))
        fcm = fit_clusterer(config, x)
        volatilities.append(fcm.descriptor_centers()[:, 1])
        # u_0 is the calm blob's membership, u_2 the turbulent one's.
        assert fcm.predict(x[:80]).mean(axis=0).argmax() == 0
        assert fcm.predict(x[-80:]).mean(axis=0).argmax() == 2
    assert len(raw_orders) > 1  # unordered, the seeds number the clusters differently
    for v in volatilities:
        assert (np.diff(v) > 0).all()
        np.testing.assert_allclose(v, volatilities[0], atol=1e-3)


def test_reorder_permutes_memberships_and_rejects_a_non_permutation():
    x = three_blobs()
    fcm = FuzzyCMeans(3, random_state=1).fit(x)
    before = fcm.predict(x)
    np.testing.assert_allclose(fcm.reorder(np.array([2, 0, 1])).predict(x), before[:, [2, 0, 1]], atol=1e-12)
    with pytest.raises(ValueError, match="permutation"):
        fcm.reorder(np.array([0, 0, 1]))


def test_volatility_order_falls_back_to_other_descriptors():
    centers = np.array([[0.3, 4.0], [-0.1, 2.0]])
    assert volatility_order(centers, ("cum_return", "max_abs_move")).tolist() == [1, 0]
    assert volatility_order(centers, ("cum_return", "last5_return")).tolist() == [1, 0]
    assert volatility_order(centers, ("last5_return", "trend_strength")).tolist() == [0, 1]
