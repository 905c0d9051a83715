"""FWA cooperative sensing, the core without ROS: preprocessing (Section
III-B1), gated-attention MIL pooling (Eq. 11-12), pair selection (Eq. 16),
the Transformer fusion over variable numbers of pairs (Eq. 21-26), the
metrics, the classical detector and the centre's two-round protocol."""
import numpy as np
import pytest
import torch

from sense_nodes.core.fwa.classical import ZScoreDetector, beam_delay_map, delay_profile
from sense_nodes.core.fwa.fusion import CULocNet, SoftFusionNet, hard_fusion
from sense_nodes.core.fwa.metrics import (attention_pearson, clopper_pearson, detection_figures,
                                          pick_threshold, selection_counts)
from sense_nodes.core.fwa.mil_pooling import GatedAttentionPool
from sense_nodes.core.fwa.preprocess import N_DELAY, preprocess
from sense_nodes.core.fwa.selection import select_pairs
from sense_nodes.core.fwa.training import random_pair_subsets
from sense_nodes.core.fwa.udetnet import CUDetNet, IUDetNet
from sense_nodes.core.fwa.ulocnet import IULocNet

N_C, SCS = 512, 30e3


def one_path_cfr(delay_bins: float, rx_beam: int = 5, n_r=64, n_t=4, n_c=N_C):
    """A single path: linear phase across the BS array (a beam) and a delay
    of ``delay_bins`` IDFT bins, on centred subcarriers."""
    k = np.arange(n_c) - n_c // 2
    tau = delay_bins / (n_c * SCS)
    f = np.exp(-2j * np.pi * k * SCS * tau)
    a = np.exp(2j * np.pi * rx_beam * np.arange(n_r) / n_r)
    return (a[:, None, None] * np.ones(n_t)[None, :, None] * f[None, None, :]).astype(np.complex64)


def test_preprocessing_shape_range_and_the_path_lands_in_its_delay_bin():
    x = preprocess(one_path_cfr(7) + 1e-6)
    assert x.shape == (64, 4, N_DELAY) and x.dtype == np.float32
    assert x.min() == pytest.approx(0.0) and x.max() == pytest.approx(1.0)
    r, t, d = np.unravel_index(np.argmax(x), x.shape)
    assert d == 7
    batch = preprocess(np.stack([one_path_cfr(3), one_path_cfr(40)]))
    assert batch.shape == (2, 64, 4, 64)
    assert [int(np.argmax(b.max(axis=(0, 1)))) for b in batch] == [3, 40]
    with pytest.raises(ValueError, match="non-finite"):
        preprocess(np.full((64, 4, N_C), np.nan, np.complex64))
    with pytest.raises(ValueError):
        preprocess(np.ones((64, 4, 32), np.complex64))


@pytest.fixture
def pool():
    torch.manual_seed(0)
    with torch.no_grad():
        yield GatedAttentionPool(16, 8).eval()


def test_attention_sums_to_one_per_scene_and_the_pooling_is_permutation_invariant(pool):
    h = torch.rand(3, 32, 16)
    z, a = pool(h)
    assert a.shape == (3, 32)
    assert torch.allclose(a.sum(-1), torch.ones(3), atol=1e-6)
    perm = torch.randperm(32)
    z2, a2 = pool(h[:, perm])
    assert torch.allclose(z, z2, atol=1e-6)
    assert torch.allclose(a[:, perm], a2, atol=1e-6)


def test_padded_pairs_get_no_weight_and_change_nothing(pool):
    h = torch.rand(2, 32, 16)
    mask = torch.ones(2, 32, dtype=torch.bool)
    mask[0, 20:] = False
    z, a = pool(h, mask)
    assert float(a[0, 20:].abs().sum()) == 0.0
    assert float(a[0].sum()) == pytest.approx(1.0, abs=1e-6)
    h2 = h.clone()
    h2[0, 20:] = 1e3  # garbage in the padding
    z2, _ = pool(h2, mask)
    assert torch.allclose(z, z2)
    alone, _ = pool(h[:1, :20])
    assert torch.allclose(z[:1], alone, atol=1e-6)
    with pytest.raises(ValueError):
        pool(h, torch.zeros(2, 32, dtype=torch.bool))


def test_detector_networks_take_any_number_of_pairs():
    torch.manual_seed(0)
    enc, centre = IUDetNet().eval(), CUDetNet().eval()
    x = torch.rand(2, 5, 64, 4, 64)
    h = enc(x)
    assert h.shape == (2, 5, 32) and bool(((h > 0) & (h < 1)).all())
    logit, a = centre(h)
    assert logit.shape == (2,) and a.shape == (2, 5)


def test_transformer_fusion_takes_variable_numbers_of_pairs_and_ignores_padding():
    torch.manual_seed(0)
    net = CULocNet(n_feature=64).eval()
    p, v = torch.randn(2, 10, 3) * 50, torch.randn(2, 10, 64)
    e = torch.randint(0, 32, (2, 10))
    mask = torch.ones(2, 10, dtype=torch.bool)
    mask[0, 3:] = False
    with torch.no_grad():
        out = net(p, v, e, mask)
        alone = net(p[:1, :3], v[:1, :3], e[:1, :3])
        other = net(p[:, :7], v[:, :7], e[:, :7])
    assert out.shape == (2, 3) and other.shape == (2, 3)
    assert torch.allclose(out[0], alone[0], atol=1e-4)
    soft = SoftFusionNet().eval()
    with torch.no_grad():
        assert soft(torch.rand(2, 4, 64, 4, 64), e[:, :4], mask[:, :4]).shape == (2, 3)
    loc = IULocNet(n_feature=32).eval()
    with torch.no_grad():
        pp, vv = loc(torch.rand(3, 64, 4, 64))
    assert pp.shape == (3, 3) and vv.shape == (3, 32)
    assert torch.allclose(hard_fusion(p, mask)[0], p[0, :3].mean(0))


def test_selection_is_top_k_then_attention_threshold():
    a = np.array([0.30, 0.05, 0.20, 0.15, 0.12, 0.08, 0.10])
    assert list(select_pairs(a, k=3, sigma_att=0.1)) == [0, 2, 3]
    assert list(select_pairs(a, k=10, sigma_att=0.1)) == [0, 2, 3, 4, 6]
    assert list(select_pairs(a, k=10, sigma_att=0.25)) == [0]
    assert list(select_pairs(a, k=10, sigma_att=0.9)) == [0]  # never empty (0 < L)
    assert list(select_pairs(a[:3], k=2, sigma_att=0.0, pair_index=[20, 21, 22])) == [20, 22]
    with pytest.raises(ValueError):
        select_pairs([0.5, np.nan])


def test_random_pair_sampling_keeps_between_half_and_all_pairs():
    m = random_pair_subsets(500, 32, np.random.default_rng(0))
    sizes = m.sum(1)
    assert sizes.min() == 16 and sizes.max() == 32


def test_mdp_fap_and_their_exact_intervals():
    lo, hi = clopper_pearson(17, 2700)  # the paper's MDP 0.63 %: CI 0.37-1.01 %
    assert 100 * lo == pytest.approx(0.37, abs=0.01) and 100 * hi == pytest.approx(1.01, abs=0.01)
    assert 100 * clopper_pearson(0, 2700)[1] == pytest.approx(0.136, abs=0.005)
    f = detection_figures([1, 0, 1, 1, 0, 0], [1, 1, 1, 0, 0, 0])
    assert f["mdp_pct"] == pytest.approx(100 / 3) and f["fap_pct"] == pytest.approx(100 / 3)
    t = pick_threshold([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1])
    assert 0.2 < t <= 0.8
    c = selection_counts([[0, 1], [2]], np.array([[1, 0, 1], [0, 0, 1]]))
    assert (c["tp"], c["fp"], c["fn"], c["l_min"], c["l_max"]) == (2, 1, 1, 1, 2)
    assert attention_pearson([[0.9, 0.1], [0.8, 0.2]], [[1, 0], [1, 0]]) > 0.98
    assert attention_pearson([[0.5, 0.5]], [[1, 0]]) != attention_pearson([[0.5, 0.5]], [[1, 0]])  # NaN: no spread


def test_beam_delay_detector_sees_a_weak_echo_the_delay_profile_misses():
    rng = np.random.default_rng(0)

    def scene(echo):
        h = sum(one_path_cfr(d, b) * g * np.exp(2j * np.pi * rng.random())
                for d, b, g in ((2, 3, 1.0), (5, 20, 0.3), (9, 40, 0.1)))
        if echo:
            h = h + 3e-3 * one_path_cfr(5, 50) * np.exp(2j * np.pi * rng.random())
        noise = (rng.standard_normal(h.shape) + 1j * rng.standard_normal(h.shape)) * 1e-4
        return beam_delay_map((h + noise)[None])

    bg = np.stack([scene(False) for _ in range(12)])
    test = np.stack([scene(e) for e in (0, 0, 0, 1, 1, 1)])
    det = ZScoreDetector.fit(bg)
    s = det.scores(test)
    assert s[3:].min() > s[:3].max()
    assert bg.shape == (12, 1, 64, 64) and delay_profile(bg).shape == (12, 1, 64)


class _FakeCentre:
    """Declares a UAV and selects pairs 1 and 17 (one per BS)."""

    def __init__(self):
        self.seen = None

    def detect(self, emb):
        from sense_nodes.core.fwa.pipeline import Decision
        self.seen = sorted(emb)
        return Decision(0.9, True, {k: 1 / len(emb) for k in emb}, [k for k in (1, 17) if k in emb])

    def localize(self, answers):
        return np.mean([p for p, _ in answers.values()], axis=0) if answers else None


def test_protocol_decides_without_a_silent_bs_and_fuses_what_answered():
    from sense_nodes.core.fwa.protocol import CentreProtocol, Detected, Located
    centre = _FakeCentre()
    proto = CentreProtocol(centre, ["bs0", "bs1"], lambda p: f"bs{p // 16}", timeout_s=0.5)
    emb0 = {k: np.ones(4) for k in range(16)}
    assert proto.on_round1(7, "bs0", emb0, now=0.0) == []        # waits for bs1
    assert proto.poll(0.3) == []
    [ev] = proto.poll(0.6)                                          # bs1 timed out
    assert isinstance(ev, Detected) and ev.missing == ["bs1"] and centre.seen == list(range(16))
    assert ev.decision.selected == [1]
    assert proto.on_round1(7, "bs1", {16: np.ones(4)}, now=0.7) == []  # too late: ignored
    [loc] = proto.on_round2(7, "bs0", {1: (np.array([1.0, 2, 3]), np.ones(4))}, now=0.8)
    assert isinstance(loc, Located) and np.allclose(loc.position, [1, 2, 3]) and loc.missing == []


def test_protocol_round_two_times_out_on_a_bs_that_does_not_answer():
    from sense_nodes.core.fwa.protocol import CentreProtocol, Located
    proto = CentreProtocol(_FakeCentre(), ["bs0", "bs1"], lambda p: f"bs{p // 16}", timeout_s=0.5)
    proto.on_round1(1, "bs0", {k: np.ones(4) for k in range(16)}, 0.0)
    [det] = proto.on_round1(1, "bs1", {k: np.ones(4) for k in range(16, 32)}, 0.1)
    assert det.missing == [] and det.decision.selected == [1, 17]
    assert proto.on_round2(1, "bs1", {17: (np.array([5.0, 5, 60]), np.ones(4))}, 0.2) == []
    [loc] = proto.poll(0.7)
    assert isinstance(loc, Located) and loc.missing == ["bs0"] and np.allclose(loc.position, [5, 5, 60])
    with pytest.raises(ValueError):
        CentreProtocol(_FakeCentre(), ["bs0"], lambda p: "bs0", timeout_s=0)


def test_background_model_turns_a_pair_map_into_its_excess_over_the_uav_free_spread():
    from sense_nodes.core.fwa.background import Z_FLOOR, BackgroundModel
    rng = np.random.default_rng(1)
    bg = rng.normal(-100.0, 2.0, size=(50, 3, 64, 64))
    model = BackgroundModel.fit(bg)
    assert model.mu.shape == (3, 64, 64) and np.allclose(model.sd.mean(), 2.0, rtol=0.05)
    quiet = rng.normal(-100.0, 2.0, size=(3, 64, 64))
    loud = quiet.copy()
    loud[1, 10, 20] = -100.0 + 2.0 * (Z_FLOOR + 6)  # 9 sigma in one cell of pair 1
    zq, zl = model.normalize(quiet), model.normalize(loud)
    assert zq.shape == (3, 8, 8, 64) and zq.min() >= 0
    assert zl[1].max() > 1.5 and zl[1].max() > 3 * zq.max()
    assert np.allclose(model.normalize(loud[1:2], pairs=[1]), zl[1:2])
    with pytest.raises(ValueError):
        BackgroundModel.fit(bg[:1])


def test_the_centre_decides_with_the_threshold_chosen_for_the_bss_that_answered():
    from sense_nodes.core.fwa import pipeline as pl
    torch.manual_seed(0)
    models = pl.Models(pl.Detector(input="bdz").eval(), IULocNet(input="bdz"), CULocNet(), threshold=0.9,
                       input="bdz", threshold_missing=np.array([0.2, 0.3]))
    h = {k: np.full(32, 0.5, np.float32) for k in range(32)}
    prob = pl.FusionCentre(models).detect(h).probability
    models.threshold, models.threshold_missing = prob + 0.01, np.array([prob - 0.01, prob + 0.02])
    only_bs1 = {k: v for k, v in h.items() if k >= 16}   # the same embeddings: the same probability
    assert pl.FusionCentre(models).detect(only_bs1).probability == pytest.approx(prob, abs=1e-6)
    assert not pl.FusionCentre(models).detect(h).present          # every BS: prob < threshold
    assert pl.FusionCentre(models).detect(only_bs1).present       # BS 0 silent: its lower threshold
    assert not pl.FusionCentre(models, threshold=prob + 0.01).detect(only_bs1).present  # a set threshold holds
    assert models.threshold_for([]) == pytest.approx(prob - 0.01)  # both silent: the lower
