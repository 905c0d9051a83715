"""DiffLoc's algorithms without ROS: the fingerprint of a hand-made two-path
channel, the fusion rule on Gaussian posteriors, DDIM determinism, the
consistency model's boundary condition and 2-step shapes, one station alone
equal to the single-BS estimate, the Cramer-Rao bound, and checkpoint
refusals."""
import numpy as np
import pytest
import torch

from sense_nodes.core.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from sense_nodes.core.diffloc.consistency import ConsistencyConfig, ConsistencyModel, ConsistencySampler
from sense_nodes.core.diffloc.crb import crb_m
from sense_nodes.core.diffloc.fingerprint import fingerprint, taps_for_span, truncated_cir
from sense_nodes.core.diffloc.networks import ScoreUNet
from sense_nodes.core.diffloc.sampler import DDIMScheduler
from sense_nodes.core.diffloc.score_fusion import GaussianPrior, fuse_noise

torch.set_num_threads(1)


def test_delay_span_matches_the_paper():
    # 150 taps of a 4096-point IFFT at 30 kHz = 1.22 us; our 128 x 720 kHz grid needs 112
    assert taps_for_span(4096, 30e3) == 150
    assert taps_for_span(128, 720e3) == 112


def test_fingerprint_of_a_two_path_channel():
    K, scs, Nr, Nt = 64, 1e6, 2, 3
    f = (np.arange(K) - K // 2) * scs
    a1, a2 = 0.8 * np.exp(0.7j), 0.3 * np.exp(-2.1j)
    tau1, tau2 = 3 / (K * scs), 7 / (K * scs)  # exactly on taps 3 and 7
    h = a1 * np.exp(-2j * np.pi * f * tau1) + a2 * np.exp(-2j * np.pi * f * tau2)
    H = np.broadcast_to(h, (Nr, Nt, K)).astype(np.complex64)
    L = 10
    g = truncated_cir(H, L)
    assert g.shape == (Nr, Nt, L)
    mag, ph = np.abs(g[0, 0]), np.angle(g[0, 0])
    # unitary IFFT: a path of amplitude a on an integer tap gives a * sqrt(K) there, nothing elsewhere
    assert mag[3] == pytest.approx(0.8 * np.sqrt(K), rel=1e-4)
    assert mag[7] == pytest.approx(0.3 * np.sqrt(K), rel=1e-4)
    assert np.delete(mag, [3, 7]).max() < 1e-4
    assert ph[3] == pytest.approx(0.7, abs=1e-4) and ph[7] == pytest.approx(-2.1, abs=1e-4)
    fp = fingerprint(H, L)
    assert fp.shape == (2 * Nr * Nt * L,) and fp.dtype == np.float32
    assert np.allclose(fp[:Nr * Nt * L].reshape(Nr, Nt, L), np.abs(g), atol=1e-5)   # magnitudes first
    assert np.allclose(fp[Nr * Nt * L:].reshape(Nr, Nt, L), np.angle(g), atol=1e-5)  # then wrapped phases


def _gaussian_eps(m, v):
    """Exact noise prediction when x0 ~ N(m, v I)."""
    m = torch.tensor(m, dtype=torch.float64)

    def eps(x, ab):
        return (1 - ab) ** 0.5 * (x - ab ** 0.5 * m) / (ab * v + 1 - ab)
    return eps


def _ddim(eps_fns, mask, noise, steps=200, prior=None):
    sched = DDIMScheduler()
    sched.set_timesteps(steps)
    x = noise.clone()
    for t in sched.timesteps:
        ab = float(sched.alphas_cumprod[int(t)])
        eps = torch.stack([fn(x, ab) for fn in eps_fns])
        pe = prior.eps_ddpm(x, ab) if prior is not None else None
        x = sched.step(fuse_noise(eps, mask, pe), int(t), x).prev_sample
    return x


def test_summed_noises_give_the_product_of_gaussians_mean():
    """Eq. 18-19 on Gaussian per-BS posteriors: the summed noise predictions
    are the product density's noise prediction, and following them at the
    lowest noise level lands on the product-of-Gaussians mean."""
    m1, v1, m2, v2 = [0.3, -0.2], 0.03 ** 2, [-0.1, 0.4], 0.06 ** 2
    fns = [_gaussian_eps(m1, v1), _gaussian_eps(m2, v2)]
    sched = DDIMScheduler()
    ab = float(sched.alphas_cumprod[0])
    both = torch.ones(2, 1, dtype=torch.bool)
    x = torch.zeros(1, 2, dtype=torch.float64)
    for _ in range(3000):  # ascend the fused log-density: x += step * score, score = -eps / sqrt(1 - ab)
        eps = fuse_noise(torch.stack([fn(x, ab) for fn in fns]), both)
        x = x - 2e-4 * eps / (1 - ab) ** 0.5
    product = (np.array(m1) / v1 + np.array(m2) / v2) / (1 / v1 + 1 / v2)
    assert np.allclose(x[0].numpy(), product, atol=0.01)
    assert np.linalg.norm(product - np.array(m2)) > 0.4  # far from either station alone
    # a flat prior changes nothing; one station alone leads to its own mean
    wide = GaussianPrior(torch.zeros(2, dtype=torch.float64), torch.full((2,), 1e6, dtype=torch.float64))
    e = torch.stack([fn(x, ab) for fn in fns])
    assert torch.allclose(fuse_noise(e, both, wide.eps_ddpm(x, ab)), fuse_noise(e, both), atol=1e-6)
    only1 = torch.tensor([[True], [False]])
    y = torch.zeros(1, 2, dtype=torch.float64)
    for _ in range(3000):
        y = y - 2e-4 * fuse_noise(torch.stack([fn(y, ab) for fn in fns]), only1) / (1 - ab) ** 0.5
    assert np.allclose(y[0].numpy(), m1, atol=0.01)


def test_one_station_alone_is_its_own_noise_under_both_rules():
    eps = torch.randn(3, 5, 2)
    mask = torch.zeros(3, 5, dtype=torch.bool)
    mask[1] = True
    prior = torch.randn(5, 2)
    assert torch.equal(fuse_noise(eps, mask), eps[1])
    assert torch.equal(fuse_noise(eps, mask, prior), eps[1])
    mask[2] = True  # two stations: the prior comes off once
    assert torch.allclose(fuse_noise(eps, mask, prior), eps[1] + eps[2] - prior)


def test_ddim_is_deterministic():
    torch.manual_seed(0)
    net = ScoreUNet(8).eval()
    cond = torch.randn(6, 8)
    sched = DDIMScheduler()
    sched.set_timesteps(20)

    def run(noise):
        x = noise.clone()
        with torch.no_grad():
            for t in sched.timesteps:
                x = sched.step(net(x, torch.full((6,), int(t) / 200.0), cond), int(t), x).prev_sample
        return x
    n1 = torch.randn(6, 2, generator=torch.Generator().manual_seed(1))
    n2 = torch.randn(6, 2, generator=torch.Generator().manual_seed(2))
    assert torch.equal(run(n1), run(n1))
    assert not torch.allclose(run(n1), run(n2))
    assert run(n1).abs().max() <= 1.0 + 1e-6  # x0 clamped to the normalised range


def test_consistency_boundary_condition_and_two_step_shapes():
    torch.manual_seed(0)
    cm = ConsistencyModel(ScoreUNet(8), ConsistencyConfig())
    x = torch.randn(5, 2)
    cond = torch.randn(5, 8)
    s_min = torch.full((5,), cm.cfg.sigma_min)
    assert torch.allclose(cm.denoise(x, s_min, cond), x, atol=1e-6)  # f(x, sigma_min) = x for any weights
    assert float(cm.sigma_to_t(torch.tensor(cm.cfg.sigma_max))) == pytest.approx(1.0)
    assert float(cm.sigma_to_t(torch.tensor(cm.cfg.sigma_min))) == pytest.approx(0.0, abs=1e-6)
    sampler = ConsistencySampler(cm.cfg, steps=2)
    assert len(sampler.sigma_list) == 2 and float(sampler.sigma_list[0]) == pytest.approx(cm.cfg.sigma_max)
    x = sampler.initial(torch.randn(5, 2))
    calls = 0
    for i, s in enumerate(sampler.sigma_list):
        f = cm.denoise(x, torch.full((5,), float(s)), cond)
        calls += 1
        x, x0 = sampler.step(f, i, x)
    assert calls == 2 and x.shape == (5, 2) and torch.equal(x, x0)
    loss, cons, anchor = cm.loss(torch.rand(16, 2) - 0.5, torch.randn(16, 8))
    loss.backward()
    assert loss.item() > 0 and all(p.requires_grad is False for p in cm.target.parameters())


def test_crb_needs_two_directions_and_falls_with_snr():
    u = np.array([[1.0, 0.0], [0.0, 1.0]])
    f = np.stack([np.outer(u[0], u[0]), np.outer(u[1], u[1])]) * 1e4
    assert crb_m(f, 1.0, links=[0]) == float("inf")  # one direction: the other coordinate is unknown
    assert crb_m(f, 1.0) == pytest.approx(np.sqrt(2e-4))
    assert crb_m(f, 0.01) == pytest.approx(crb_m(f, 1.0) / 10)


def test_checkpoint_refusals_name_the_file(tmp_path, trained):
    from sense_nodes.core.diffloc.estimator import Estimator
    path = trained["ct"]
    ck = load_checkpoint(path, kind="diffloc", version=1)
    old = save_checkpoint(tmp_path / "v2.pt", kind="diffloc", version=2, config=ck.config,
                          state_dict=ck.state_dict, extra=ck.extra)
    with pytest.raises(CheckpointError, match="v2.pt.*format version 2"):
        Estimator.from_checkpoint(old, "cpu")
    cut = tmp_path / "cut.pt"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="cut.pt"):
        Estimator.from_checkpoint(cut, "cpu")


def test_one_station_alone_gives_the_single_bs_estimate(trained, syn_data):
    from sense_nodes.core.diffloc.estimator import Estimator
    est = Estimator.from_checkpoint(trained["ct"], "cpu")
    est.configure(draws=2)
    te = syn_data.indices("test")
    out = est.estimate(syn_data.fp[te], syn_data.valid[te])
    alone = est.estimate(syn_data.fp[te], syn_data.valid[te], stations=[2], per_bs=False)
    assert np.allclose(alone.fused_xy, out.per_bs_xy[:, 2], equal_nan=True)
    assert out.localised.all() and np.isfinite(out.cov).all()
    # the sample with no path to BS1 has no BS1 estimate but still a fused one
    if 0 in te:
        i = list(te).index(0)
        assert np.isnan(out.per_bs_xy[i, 1]).all() and np.isfinite(out.fused_xy[i]).all()
    # no link at all: not localised, NaN, never a number
    none = est.estimate(syn_data.fp[te[:2]], np.zeros((2, 4), bool))
    assert not none.localised.any() and np.isnan(none.fused_xy).all()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from diffloc_helpers import trained_models
    _ds, models = trained_models(tmp_path_factory.mktemp("dl"), ("ct",), steps=40)
    return models


@pytest.fixture(scope="module")
def syn_data(trained):
    from sense_nodes.core.diffloc.dataset import load_positioning
    from sense_nodes.data.csi.dataset import load_dataset
    return load_positioning(load_dataset(trained["ct"].parent.parent / "syn"))


def test_gaussian_product_fusion_weights_by_precision():
    from sense_nodes.core.diffloc.score_fusion import gaussian_product
    means = np.array([[[0.3, -0.2]], [[-0.1, 0.4]], [[9.0, 9.0]]])
    covs = np.array([[np.eye(2) * 0.03 ** 2], [np.eye(2) * 0.06 ** 2], [np.eye(2)]])
    mask = np.array([[True], [True], [False]])  # the third station did not measure
    mean, cov = gaussian_product(means, covs, mask)
    w1, w2 = 1 / 0.03 ** 2, 1 / 0.06 ** 2
    assert np.allclose(mean[0], (w1 * means[0, 0] + w2 * means[1, 0]) / (w1 + w2))
    assert np.allclose(cov[0], np.eye(2) / (w1 + w2))
    alone, _ = gaussian_product(means, covs, np.array([[False], [True], [False]]))
    assert np.allclose(alone[0], means[1, 0])


def test_the_covariance_scale_puts_95_percent_of_errors_inside_the_ellipse():
    from sense_nodes.core.diffloc.calibration import cov_scale
    from sense_nodes.core.diffloc.covariance import coverage95
    rng = np.random.default_rng(0)
    err = rng.standard_normal((2000, 2)) * 3.0  # true spread 3 m, claimed 1 m: overconfident
    cov = np.tile(np.eye(2), (2000, 1, 1))
    assert coverage95(err, cov) < 30
    s = cov_scale(err, cov)
    assert s == pytest.approx(9.0, rel=0.15)
    assert coverage95(err, s * cov) == pytest.approx(95.0, abs=0.1)


def test_fusion_and_covariance_scale_are_chosen_on_validation_and_used(tmp_path, trained, syn_data):
    import shutil
    from sense_nodes.core.diffloc.calibration import KEY, choose_and_record
    from sense_nodes.core.diffloc.covariance import coverage95
    from sense_nodes.core.diffloc.estimator import PAPER_FUSION, Estimator
    path = shutil.copy(trained["ct"], tmp_path / "ct.pt")
    bare = load_checkpoint(path, kind="diffloc", version=1)
    if KEY in bare.config:  # a checkpoint without a record falls back to the paper's rule
        cfg = {k: v for k, v in bare.config.items() if k != KEY}
        save_checkpoint(path, kind="diffloc", version=1, config=cfg, state_dict=bare.state_dict, extra=bare.extra)
    est = Estimator.from_checkpoint(path, "cpu")
    assert est.fusion == PAPER_FUSION and est.cov_scale == 1.0
    choices = choose_and_record(path, syn_data, log=lambda *_: None, draws=4)
    va = syn_data.indices("val")
    assert choices["samples"] == int(syn_data.valid[va].any(1).sum())
    assert choices["fusion"] == min(choices["fusion_errors_m"], key=choices["fusion_errors_m"].get)
    est = Estimator.from_checkpoint(path, "cpu")
    est.configure(draws=4)
    assert est.fusion == choices["fusion"] and est.cov_scale == choices["cov_scale"][choices["fusion"]]
    out = est.estimate(syn_data.fp[va], syn_data.valid[va], per_bs=False)
    ok = out.localised
    assert coverage95(out.fused_xy[ok] - syn_data.xy[va][ok], out.cov[ok]) >= 94.0
    est.configure(cov_scale=1.0)
    with pytest.raises(ValueError, match="cov_scale"):
        est.configure(cov_scale=-1.0)


def test_beam_delay_fingerprint_puts_a_path_in_its_beam_and_tap():
    from sense_nodes.core.diffloc.fingerprint import BEAM_DYNAMIC_DB, fingerprint, fingerprint_dim
    K, L, tap = 32, 12, 3
    k = np.arange(K) - K // 2
    cfr = np.exp(-2j * np.pi * np.fft.ifftshift(np.arange(K)) * tap / K)  # a delay of exactly `tap` taps
    cfr = np.fft.fftshift(cfr)  # centred subcarriers, as the datasets store them
    assert k.shape == cfr.shape
    r, c = np.meshgrid(np.arange(4), np.arange(4), indexing="ij")
    elem = np.exp(2j * np.pi * (r * 1 + c * 2) / 4).ravel()  # arrives in DFT beam (1, 2)
    ports = np.concatenate([elem, 0.5 * elem])  # two polarisations, polarisation-major
    H = ports[:, None, None] * np.ones(4)[None, :, None] * cfr[None, None, :]
    f = fingerprint(H[None], L, "beam_db")[0]
    assert f.shape == (fingerprint_dim("beam_db", 32, 4, L),) == (16 * L,)
    assert int(np.argmax(f)) == (1 * 4 + 2) * L + tap
    assert f.min() == pytest.approx(f.max() - BEAM_DYNAMIC_DB)
    with pytest.raises(ValueError, match="square cross-polarised"):
        fingerprint(np.ones((1, 6, 4, K)), L, "beam_db")


def test_the_stacked_unets_give_the_estimates_of_the_networks_run_one_by_one(trained, syn_data):
    from sense_nodes.core.diffloc.estimator import Estimator
    est = Estimator.from_checkpoint(trained["ct"], "cpu")
    te = syn_data.indices("test")
    for fusion in ("gaussian_product", "prior_corrected"):
        est.configure(draws=3, fusion=fusion)
        est.stack = None
        one = est.estimate(syn_data.fp[te], syn_data.valid[te])
        est.stack = __import__("sense_nodes.core.diffloc.stacked", fromlist=["StackedUNet"]).StackedUNet(list(est.nets))
        both = est.estimate(syn_data.fp[te], syn_data.valid[te])
        assert np.allclose(one.fused_xy, both.fused_xy, atol=5e-3, equal_nan=True)  # metres: float32 rounding
        assert np.allclose(one.per_bs_xy, both.per_bs_xy, atol=5e-3, equal_nan=True)  # metres: float32 rounding


@pytest.mark.parametrize("fusion", ["sum", "gaussian_product"])
def test_a_request_every_station_heard_is_estimated_as_inside_a_mixed_batch(trained, syn_data, fusion):
    """A lone request with every link takes the pass without gather and
    scatter (under the Gaussian product, the stations sampled side by side);
    in a batch beside a request missing a station it is gathered. Its noise
    draws do not depend on what follows it, so both give it the same
    estimate, fused and per station, with the same spread."""
    from sense_nodes.core.diffloc.estimator import Estimator
    est = Estimator.from_checkpoint(trained["ct"], "cpu")
    est.configure(draws=3, fusion=fusion)
    fp = syn_data.fp[syn_data.indices("test")[:2]]
    mask = np.ones((2, est.num_bs), bool)
    mask[1, 0] = False
    alone = est.estimate(fp[:1], mask[:1])
    batch = est.estimate(fp, mask)
    assert np.isfinite(alone.fused_xy).all()
    assert np.allclose(alone.fused_xy[0], batch.fused_xy[0], atol=1e-3)  # metres: float32 rounding
    assert np.allclose(alone.per_bs_xy[0], batch.per_bs_xy[0], atol=1e-3)
    assert np.allclose(alone.cov[0], batch.cov[0], atol=1e-4)


def test_every_projection_dtype_gives_the_float32_components():
    """bfloat16 and int8 projections are speed choices: the components the
    networks see stay within a few percent of float32's, also for a
    fingerprint with a strong outlier (a strong path) and an odd length."""
    from sense_nodes.core.diffloc.fingerprint import FeatureNorm
    rng = np.random.default_rng(0)
    latent = rng.standard_normal((400, 12)) @ rng.standard_normal((12, 3000))
    X = (latent + 0.1 * rng.standard_normal(latent.shape)).astype(np.float32)
    norm = FeatureNorm.fit(X[:300], components=12)
    X[300:, 7] += 50 * X[:300, 7].std()
    ref = norm(X[300:])
    for dtype in (torch.bfloat16, torch.int8):
        norm.compute_dtype = dtype
        got = norm(X[300:])
        assert got.dtype == np.float32 and got.shape == ref.shape
        assert np.linalg.norm(got - ref) / np.linalg.norm(ref) < 0.05, dtype


def test_an_unknown_projection_is_refused_naming_it(trained):
    from sense_nodes.core.diffloc.estimator import Estimator
    est = Estimator.from_checkpoint(trained["ct"], "cpu")
    with pytest.raises(ValueError, match="projection"):
        est.configure(projection="int4")


def test_one_time_for_every_row_gives_the_per_row_scores():
    """Samplers pass one number as the time (its terms are kept between
    requests): the scores equal those of the time repeated per row, also on
    the second, cached call."""
    from sense_nodes.core.diffloc.networks import ScoreMLP
    from sense_nodes.core.diffloc.stacked import StackedUNet
    torch.manual_seed(0)
    x, cond, t = torch.randn(5, 2), torch.randn(5, 8), 0.37
    for net in (ScoreMLP(8).eval(), ScoreUNet(8).eval()):
        with torch.no_grad():
            assert torch.allclose(net(x, t, cond), net(x, torch.full((5,), t), cond), atol=1e-6)
    nets = [ScoreUNet(8).eval() for _ in range(3)]
    stack = StackedUNet(nets)
    X, C = torch.randn(3, 5, 2), torch.randn(3, 5, 8)
    with torch.no_grad():
        want = torch.stack([n(X[k], torch.full((5,), t), C[k]) for k, n in enumerate(nets)])
        for _ in range(2):
            assert torch.allclose(stack(X, t, C), want, atol=1e-5)
    cm = ConsistencyModel(nets[0], ConsistencyConfig())
    with torch.no_grad():
        assert torch.allclose(cm.denoise(x, 2.5, cond), cm.denoise(x, torch.full((5,), 2.5), cond), atol=1e-6)


def test_a_bundle_fingerprints_every_station_as_alone():
    from sense_nodes.core.diffloc.dataset import bundle_fingerprints
    rng = np.random.default_rng(3)
    H = {b: rng.standard_normal((2, 4, 64)) + 1j * rng.standard_normal((2, 4, 64)) for b in (0, 2, 3)}
    H[2][:] = 0  # no path: masked
    fp, mask = bundle_fingerprints(H, 16, 4, 8)
    assert mask.tolist() == [True, False, False, True]
    for b, h in H.items():
        assert np.allclose(fp[b], fingerprint(h[None], 16)[0])
    assert not fp[1].any()


def test_a_bundle_with_one_non_finite_csi_value_is_refused_naming_its_station():
    from sense_nodes.core.diffloc.dataset import bundle_fingerprints
    rng = np.random.default_rng(4)
    H = {b: (rng.standard_normal((2, 4, 64)) + 1j * rng.standard_normal((2, 4, 64))).astype(np.complex64)
         for b in (0, 1)}
    for bad in (np.nan, np.inf):
        H[1][1, 2, 40] = bad
        with pytest.raises(ValueError, match="station 1: non-finite CSI"):
            bundle_fingerprints(H, 16, 4, 8)
        for kind in ("db", "beam_db"):
            assert not np.isfinite(fingerprint(H[1][None], 16, kind)).all()


def test_db_fingerprint_is_the_magnitude_in_db_beside_the_phase():
    rng = np.random.default_rng(5)
    H = rng.standard_normal((2, 4, 64)) + 1j * rng.standard_normal((2, 4, 64))
    g = truncated_cir(H, 16)
    f = fingerprint(H, 16, "db")
    assert f.dtype == np.float32 and f.shape == (2 * 2 * 4 * 16,)
    assert np.allclose(f[:128], 20 * np.log10(np.abs(g).ravel()), atol=1e-4)
    assert np.allclose(f[128:], np.angle(g).ravel(), atol=1e-6)

