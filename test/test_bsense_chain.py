"""One BSense chain: frames replayed through the ``bsense`` deployment over
real topics (noise_filter -> object_filter -> uav_tracker, the parameters of
config/params/bsense.yaml) give the tracks ``BSensePipeline`` gives on the
same frames: the same ids, positions, confirmation, verifier scores and UAV
verdicts (the package's default verifier on both sides). Detections cross the wire as float32 (the message's type), so
positions agree to 1e-6 relative and scores to float32 precision."""
import numpy as np
import pytest

from sense_nodes.core.bsense.noise_model import NoiseModel
from sense_nodes.core.bsense.pipeline import BSensePipeline, PipelineConfig
from sense_nodes.core.bsense.verification import default_verifier_path, load_classifier
from sense_nodes.data.bs_sim import library
from sense_nodes.msg import Track
from sense_nodes.runtime.latency import replay_in_step

pytestmark = pytest.mark.ros
N_FRAMES = 60


@pytest.fixture(scope="module")
def chain_inputs():
    calib = library.scenario("uav_free_calib")
    model = NoiseModel().fit([calib.frame(k).points for k in range(150)])
    case = library.scenario("star_1_r1")
    return model, [case.frame(k) for k in range(N_FRAMES)]


def test_deployment_gives_the_pipelines_tracks(ros_context, chain_inputs):
    model, frames = chain_inputs
    pipe = BSensePipeline(PipelineConfig(stage=5), noise_model=model, classifier=load_classifier(default_verifier_path()))
    expected = [pipe.step(f.points) for f in frames]
    got = replay_in_step(frames, model)
    assert all(m is not None for m in got), "the deployment did not answer every frame"
    n_tracks = n_confirmed = n_scored = n_uav = 0
    for k, (r, msg) in enumerate(zip(expected, got)):
        assert [t.track_id for t in msg.tracks] == [s.id for s in r.tracks], f"frame {k}: track ids"
        pos = np.array([(t.position.x, t.position.y, t.position.z) for t in msg.tracks]).reshape(-1, 3)
        np.testing.assert_allclose(pos, np.array([s.position for s in r.tracks]).reshape(-1, 3), rtol=1e-6,
                                   err_msg=f"frame {k}: positions")
        assert [t.confirmed for t in msg.tracks] == [s.confirmed for s in r.tracks], f"frame {k}: confirmation"
        scores = np.array([s.score if np.isfinite(s.score) else -1.0 for s in r.tracks])
        np.testing.assert_allclose([t.classifier_score for t in msg.tracks], scores, atol=1e-5,
                                   err_msg=f"frame {k}: verifier scores")
        out = {s.id for s in r.output}
        assert {t.track_id for t in msg.tracks if t.classification == Track.UAV} == out, f"frame {k}: UAVs"
        n_tracks += len(r.tracks)
        n_confirmed += sum(s.confirmed for s in r.tracks)
        n_scored += int((scores >= 0).sum())
        n_uav += len(out)
    assert n_tracks > 100 and n_confirmed > 10 and n_scored > 5 and n_uav > 5, \
        "the frames must exercise confirmation and verification"
