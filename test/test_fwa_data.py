"""The fwa loader's receiver noise (seeded per sample, at each pair's link
SNR, shiftable), the delay-tap reader equal to transforming the CFRs, and
the feature cache the training reads."""
import numpy as np
import pytest

from conftest import fwa_dataset
from sense_nodes.core.fwa.features import load_features, sample_features, sample_features_from_cfr
from sense_nodes.data.csi import fwa_pairs
from sense_nodes.data.csi.dataset import load_dataset


@pytest.fixture(scope="module")
def ds():
    return load_dataset(fwa_dataset())


def _H(sample):
    return np.stack([link.H for link in sample.links])


def test_receiver_noise_is_seeded_per_sample_at_the_link_snr(ds):
    a, b = _H(ds.sample(1)), _H(ds.sample(1))
    assert np.array_equal(a, b)                      # same sample, same noise
    clean = _H(ds.sample(1, noise=False))
    w = a - clean
    std = fwa_pairs.noise_std(ds)
    measured = np.sqrt(np.mean(np.abs(w) ** 2, axis=(1, 2, 3)))
    assert np.allclose(measured, std, rtol=0.02)
    w2 = _H(ds.sample(2)) - _H(ds.sample(2, noise=False))
    assert not np.allclose(w[0, 0, 0, :8], w2[0, 0, 0, :8])  # another sample, other noise
    quiet = _H(ds.sample(1, snr_offset_db=10.0)) - clean
    assert np.sqrt(np.mean(np.abs(quiet) ** 2)) == pytest.approx(np.sqrt(np.mean(np.abs(w) ** 2)) / np.sqrt(10),
                                                                 rel=0.02)
    link = ds.sample(1, snr_offset_db=10.0).links[3]
    assert link.snr_db == pytest.approx(float(ds.arrays["link_snr_db"][3]) + 10.0)
    with pytest.raises(ValueError):
        ds.sample(1, snr_offset_db=float("nan"))


def test_delay_taps_equal_the_transform_of_the_cfrs(ds):
    H = _H(ds.sample(3))
    taps, taps_w = fwa_pairs.sample_taps(ds, 3)
    ref = np.fft.ifft(np.fft.ifftshift(H, axes=-1), axis=-1)[..., :64]
    win = fwa_pairs.periodic_blackman(H.shape[-1])
    ref_w = np.fft.ifft(np.fft.ifftshift(H * win, axes=-1), axis=-1)[..., :64]
    scale = np.abs(ref).max()
    assert np.abs(taps - ref).max() < 1e-4 * scale
    assert np.abs(taps_w - ref_w).max() < 1e-4 * scale
    x, bd = sample_features(ds, 3)
    x2, bd2 = sample_features_from_cfr(ds, 3)
    assert np.abs(x - x2).max() < 2e-3 and np.abs(bd - bd2).max() < 0.05


def test_feature_cache_holds_every_sample_and_is_reused(ds):
    f = load_features(ds, progress=False)
    assert f.x.shape == (ds.num_samples, 32, 64, 4, 64) and f.x.dtype == np.float16
    assert f.bd.shape == (ds.num_samples, 32, 64, 64)
    x5, _ = sample_features(ds, 5)
    assert np.abs(f.x[5].astype(np.float32) - x5).max() < 1e-3
    again = load_features(ds, progress=False)
    assert np.array_equal(np.asarray(again.x[2]), np.asarray(f.x[2]))
    assert len(f.indices("train")) + len(f.indices("val")) + len(f.indices("test")) == ds.num_samples


def test_receiver_noise_has_each_links_power_and_is_one_seeded_draw():
    from sense_nodes.data.csi.cfr import receiver_noise
    std = np.array([0.1, 1.0, 30.0])
    w = receiver_noise(np.random.default_rng(5), (4, 5000), std)
    assert w.shape == (3, 4, 5000) and w.dtype == np.complex64
    power = np.mean(np.abs(w) ** 2, axis=(1, 2))
    assert np.allclose(power, std ** 2, rtol=0.03)                  # CN(0, std^2) per link
    assert np.allclose(np.mean(w.real ** 2, axis=(1, 2)), std ** 2 / 2, rtol=0.03)
    assert abs(np.mean(w.real * w.imag)) < 0.01 * np.mean(np.abs(w) ** 2)  # real, imaginary independent
    assert abs(np.mean(w)) < 0.01 * np.sqrt(np.mean(np.abs(w) ** 2))       # zero mean
    again = receiver_noise(np.random.default_rng(5), (4, 5000), std)
    assert np.array_equal(w, again)                                  # same seed, same draw
    assert not np.allclose(w, receiver_noise(np.random.default_rng(6), (4, 5000), std))
    g = np.random.default_rng(5)                                     # = one draw per link in turn
    per_link = [receiver_noise(g, (4, 5000), std[i:i + 1])[0] for i in range(3)]
    assert np.array_equal(w, np.stack(per_link))


def test_a_sample_is_the_same_from_a_fresh_load_and_after_other_samples(ds):
    first = _H(ds.sample(4))
    ds.sample(0, num_subcarriers=64)
    ds.sample(1, augment=False, noise=False)
    assert np.array_equal(first, _H(ds.sample(4)))
    assert np.array_equal(first, _H(load_dataset(fwa_dataset()).sample(4)))
