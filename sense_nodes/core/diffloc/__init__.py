"""DiffLoc: diffusion-model UE positioning from uplink SRS CSI with multi-BS
score fusion and a two-step consistency model (``diffloc.txt``).

One module per concept:

- :mod:`fingerprint`  CFR -> truncated CIR -> magnitude / wrapped phase
  fingerprint (Sec. II-A, Eq. 2-4); feature and position normalisation.
- :mod:`networks`     score networks (DiffLoc-MLP, DiffLoc-UNet), sinusoidal
  time embedding, the baselines' regressors and grid classifier (Sec. IV, V-B).
- :mod:`sampler`      DDPM linear schedule and deterministic DDIM (Eq. 8-13).
- :mod:`consistency`  consistency training and few-step sampling
  (Sec. IV-D, Eq. 20-22, Algorithms 3-4).
- :mod:`score_fusion` sum of per-BS noise predictions (Eq. 18-19) and the
  prior-corrected sum.
- :mod:`grid_fusion`  grid probability fusion baseline (Sec. V-B3, [14]).
- :mod:`knn`          k-NN fingerprinting floor.
- :mod:`covariance`   spread of estimates from several initial noises.
- :mod:`training`     training loops of every model kind.
- :mod:`estimator`    the one chain used by the node and the evaluation.
- :mod:`crb`          Cramer-Rao bound on position from traced paths.

Notation (paper -> code):

==================  ===========================================
paper               code
==================  ===========================================
x_0                 ``x0`` clean (normalised) UE position [N, 2]
x_t                 ``sample`` / ``x`` noisy position at step t
epsilon             ``eps`` injected noise; eps_theta -> ``model_output``
alpha_bar_t         ``alphas_cumprod[t]``
beta_t              ``betas[t]``
c^(b)               ``cond`` fingerprint of BS b (after normalisation)
B                   number of base stations (``num_bs``)
sigma, t(sigma)     ``sigma``, :func:`consistency.sigma_to_t`
f_theta(x, sigma)   :meth:`consistency.ConsistencyModel.denoise`
L                   ``taps`` CIR truncation length
==================  ===========================================
"""
