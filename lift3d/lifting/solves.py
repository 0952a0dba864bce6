"""Small solves of the lifting, unrolled over the unknowns (docs/method.md §4).

Every function here works on *dicts or lists of arrays*, one array per matrix
entry or vector element, each holding one value per batch element (frame,
component, yaw, candidate). Every step is then an elementwise, vectorised
operation over the batch: a measured CPU choice (see
`experiments/benchmarks/lift_speed.py` and RESULTS.md) that beats batched
LAPACK calls on thousands of tiny (P ≤ ~16) systems by an order of magnitude.
The batch axes are whatever the caller's arrays broadcast to; callers put
frames in the trailing (SIMD) axis.

- `cholesky`, `forward`, `backward`: a symmetric positive-definite system.
- `whiten`, `solve_dense`: the exceptions, on dense arrays in a rolled loop, for solves paid once per lift or per frame (not per candidate),
  where unrolled code costs far more to compile than it saves at run time.
- `yaw_coefficients`: the coefficients M_pq(θ) of the Gram terms at a yaw.
- `exact_profile`: the exact objective of one (component, yaw) over s > 0
  and a, by safeguarded Newton steps on log s (docs/method.md §4.3);
  `safeguarded_newton` is the elementwise 1-D minimiser it shares with the
  unweighted profile, `explained_terms` that profile's closed-form parts.

The `jax.lax.optimization_barrier`s here and in `api` mark values XLA should
compute once rather than fuse into every consumer. XLA's CPU compiler in jax
0.10.2 drops them before fusion: the optimised HLO of `lift` (weighted and
unweighted) is the same with and without them (checked 2026-11-27). They are
kept for compilers that honour them, and what they were meant to prevent on
the CPU has not been re-measured.

Shape letters are those of `lift3d.lifting` (its package docstring).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def upper_pairs(size: int) -> list[tuple[int, int]]:
  """The (i, j), i ≤ j, entries of a size × size symmetric matrix, row-major."""
  return [(i, j) for i in range(size) for j in range(i, size)]


def cholesky(matrix: dict, size: int):
  """Unrolled Cholesky factorisation of a symmetric positive-definite matrix.

  Args:
    matrix: {(i, j): array} for i ≤ j < size, arrays of one broadcast shape.
    size: the matrix size.

  Returns:
    (lower, inv_diag): {(i, j): array} for j < i, the strictly lower factor,
    and [array] * size, the reciprocals of its diagonal.
  """
  lower, inv_diag = {}, []
  for j in range(size):
    d = matrix[j, j]
    for k in range(j):
      d = d - lower[j, k] * lower[j, k]
    inv = jax.lax.rsqrt(d)
    column = [inv]
    for i in range(j + 1, size):
      v = matrix[j, i]
      for k in range(j):
        v = v - lower[i, k] * lower[j, k]
      column.append(v * inv)
    # One barrier per column, so that XLA does not fuse the whole
    # factorisation into its consumers and recompute shared entries many
    # times over (dropped by XLA CPU: see the module docstring).
    column = jax.lax.optimization_barrier(column)
    inv_diag.append(column[0])
    for i, v in zip(range(j + 1, size), column[1:], strict=True):
      lower[i, j] = v
  return lower, inv_diag


def forward(lower: dict, inv_diag: list, rhs: list) -> list:
  """Solves `L z = rhs` for the factor of `cholesky` (lists of arrays)."""
  z = []
  for i in range(len(rhs)):
    v = rhs[i]
    for k in range(i):
      v = v - lower[i, k] * z[k]
    # Each z_i feeds every later one: a barrier asks XLA not to fuse (and so
    # recompute) the whole chain into each consumer (dropped by XLA CPU: see
    # the module docstring).
    z.append(jax.lax.optimization_barrier(v * inv_diag[i]))
  return z


def backward(lower: dict, inv_diag: list, z: list) -> list:
  """Solves `Lᵀ x = z` for the factor of `cholesky` (lists of arrays)."""
  size = len(z)
  x = [None] * size
  for i in reversed(range(size)):
    v = z[i]
    for k in range(i + 1, size):
      v = v - lower[k, i] * x[k]
    x[i] = v * inv_diag[i]
  return x


def solve(matrix: dict, size: int, rhs: list) -> list:
  """x = matrix⁻¹ rhs for a symmetric positive-definite `matrix` (see `cholesky`)."""
  lower, inv_diag = cholesky(matrix, size)
  return backward(lower, inv_diag, forward(lower, inv_diag, rhs))


def whiten(gram, design):
  """`L⁻¹ Xᵀ` for the Cholesky factor `L Lᵀ = gram`, in a rolled loop.

  For the frame-independent systems of `search.prepare` (a few hundred
  matrices per lift), where the unrolled `cholesky` and `forward` cost far
  more to compile than to run: unrolled at P = 15 they were about half of the
  compiled `lift` program's machine code. Right-looking elimination of the
  augmented matrix `[gram | Xᵀ]`, one `fori_loop` step per column.

  Args:
    gram: (..., P, P) symmetric positive-definite.
    design: (..., R, P) X.

  Returns:
    (..., P, R) `L⁻¹ Xᵀ`, so that `X gram⁻¹ Xᵀ = (L⁻¹Xᵀ)ᵀ(L⁻¹Xᵀ)`.
  """
  size = gram.shape[-1]
  batch = gram.shape[:-2]
  augmented = jnp.concatenate([gram, jnp.swapaxes(design, -1, -2)], axis=-1)  # (..., P, P + R)
  width = augmented.shape[-1]
  # Batch minor, (P, P + R, N): each step reads one contiguous row block.
  augmented = jnp.moveaxis(augmented.reshape(-1, size, width), 0, -1)
  columns = jnp.arange(width)[:, None]
  rows = jnp.arange(size)[:, None, None]

  def step(k, rest):  # rows < k are final; row k becomes row k of [Lᵀ | L⁻¹Xᵀ]
    row = jax.lax.dynamic_index_in_dim(rest, k, axis=0, keepdims=False)  # (P + R, N)
    pivot = jax.lax.dynamic_index_in_dim(row, k, axis=0, keepdims=True)  # (1, N)
    row = jnp.where(columns >= k, row * jax.lax.rsqrt(pivot), 0.0)
    lower = jnp.where(rows[:, 0] > k, row[:size], 0.0)  # (P, N) column k of L below the diagonal
    return jnp.where(rows == k, row[None], rest - lower[:, None] * row[None])

  out = jax.lax.fori_loop(0, size, step, augmented)[:, size:]  # (P, R, N)
  return jnp.moveaxis(out, -1, 0).reshape(*batch, size, width - size)


def solve_dense(matrix, rhs):
  """`matrix⁻¹ rhs` for symmetric positive-definite matrices, in a rolled loop.

  Gauss–Jordan elimination without pivoting (its pivots are those of an LDLᵀ
  factorisation, positive for SPD matrices; `lift3d.sequence._sweep_inverse`
  is the same elimination unrolled, inside a scan), one `fori_loop` step per column:
  for one solve per frame, where the unrolled `solve` would be compiled as
  P large kernels for a cost paid once. The batch axes are trailing (frames
  minor), so that each step is one vectorised loop over them: with the batch
  leading, its loop took 13.0 ms of a 16,384-frame weighted `lift` against
  6.2 ms (one profile on the 2-core CPU; RESULTS.md, session 19).

  Args:
    matrix: (n, n, ...) symmetric positive-definite, batch axes trailing.
    rhs: (n, ...).

  Returns:
    (n, ...) the solution.
  """
  size = matrix.shape[0]
  augmented = jnp.concatenate([matrix, rhs[:, None]], axis=1)  # (n, n + 1, ...)
  rows = jnp.arange(size).reshape((size,) + (1,) * (augmented.ndim - 1))

  def step(k, augmented):
    row = jax.lax.dynamic_index_in_dim(augmented, k, axis=0, keepdims=True)  # (1, n + 1, ...)
    row = row / jax.lax.dynamic_index_in_dim(row, k, axis=1, keepdims=True)
    column = jax.lax.dynamic_index_in_dim(augmented, k, axis=1, keepdims=True)  # (n, 1, ...)
    eliminated = augmented - jnp.where(rows == k, 0.0, column) * row
    return jnp.where(rows == k, row, eliminated)

  return jax.lax.fori_loop(0, size, step, augmented)[:, -1]


# Coordinate pairs (p, q) of the Gram terms H_pq = Σ_l D_l² B_lpᵀ B_lq. A level
# camera (E = I) needs only these four, since M(θ) = R_θᵀΠᵀΠR_θ has no x-y or
# y-z entries; a tilted one needs all six.
LEVEL_PAIRS = ((1, 1), (0, 0), (2, 2), (0, 2))
ALL_PAIRS = ((0, 0), (1, 1), (2, 2), (0, 1), (0, 2), (1, 2))


def yaw_coefficients(cos, sin, projection, pairs) -> list:
  """M_pq(θ) of each Gram pair, `M(θ) = R_θᵀ S R_θ` with `S = EᵀΠᵀΠE`.

  The Gram matrix of the per-yaw system is `G(θ) = Σ_pq M_pq(θ) H_pq`.

  Args:
    cos, sin: cos θ and sin θ, arrays of any (common) shape.
    projection: S (3, 3), or None for a level camera (S = diag(1, 1, 0)).
    pairs: `LEVEL_PAIRS` (level camera) or `ALL_PAIRS`.

  Returns:
    A list with one array (or float) per pair, broadcasting like `cos`.
  """
  if projection is None:
    table = {(1, 1): 1.0, (0, 0): cos * cos, (2, 2): sin * sin, (0, 2): cos * sin}
    return [table[p] for p in pairs]
  # R_θ rows as (constant, cos, sin) coefficient triples.
  rot = [[(0, 1, 0), (0, 0, 0), (0, 0, 1)],
         [(0, 0, 0), (1, 0, 0), (0, 0, 0)],
         [(0, 0, -1), (0, 0, 0), (0, 1, 0)]]

  def entry(a, p):
    const, with_cos, with_sin = rot[a][p]
    out = 0.0
    if const:
      out = out + const
    if with_cos:
      out = out + with_cos * cos
    if with_sin:
      out = out + with_sin * sin
    return out

  coefficients = []
  for p, q in pairs:
    m = 0.0
    for a in range(3):
      rap = entry(a, p)
      if isinstance(rap, float) and rap == 0.0:
        continue
      for b in range(3):
        rbq = entry(b, q)
        if isinstance(rbq, float) and rbq == 0.0:
          continue
        m = m + rap * projection[a, b] * rbq
    coefficients.append(m)
  return coefficients


def profile(gram: dict, rhs: list, norm2, inv_var, inv_variances: list):
  """The exact profile `F(t)` of one (component, yaw) in t = log s, as a function.

  See `exact_profile` for the objective and the argument conventions.

  Returns:
    `evaluate(log_scale) -> (cost, slope, curvature, coeffs)`: F, dF/dt,
    d²F/dt² and a(s) (J arrays) at s = exp(log_scale).
  """
  num_basis = len(rhs) - 1
  basis_gram = {(i, j): gram[i + 1, j + 1] * inv_var for i, j in upper_pairs(num_basis)}
  mean_cross = [gram[0, j + 1] * inv_var for j in range(num_basis)]  # Eᵀ Aᵀ D² A μ / σ²
  data_cross = [rhs[j + 1] * inv_var for j in range(num_basis)]  # Eᵀ Aᵀ D² w / σ²
  mean_data = rhs[0] * inv_var
  mean_norm = gram[0, 0] * inv_var
  data_norm = norm2 * inv_var

  def gram_times(vector):
    return [sum(basis_gram[min(i, j), max(i, j)] * vector[j] for j in range(num_basis))
            for i in range(num_basis)]

  def evaluate(log_scale):
    """F, dF/dt, d²F/dt² (t = log s) and a at s = exp(t)."""
    s = jnp.exp(log_scale)
    hessian = {(i, j): s * s * basis_gram[i, j] + (inv_variances[i] if i == j else 0.0)
               for i, j in upper_pairs(num_basis)}
    lower, inv_diag = cholesky(hessian, num_basis)
    r = [s * (data_cross[j] - s * mean_cross[j]) for j in range(num_basis)]
    a = backward(lower, inv_diag, forward(lower, inv_diag, r))
    cost = data_norm - 2 * s * mean_data + s * s * mean_norm - sum(
        ri * ai for ri, ai in zip(r, a, strict=True))
    ga = gram_times(a)
    aga = sum(ai * gi for ai, gi in zip(a, ga, strict=True))
    r1 = [data_cross[j] - 2 * s * mean_cross[j] for j in range(num_basis)]
    r1a = sum(x * y for x, y in zip(r1, a, strict=True))
    slope = -2 * mean_data + 2 * s * mean_norm - 2 * r1a + 2 * s * aga
    a1 = backward(lower, inv_diag, forward(
        lower, inv_diag, [r1[j] - 2 * s * ga[j] for j in range(num_basis)]))
    curvature = (2 * mean_norm + 4 * sum(m * x for m, x in zip(mean_cross, a, strict=True))
                 - 2 * sum(x * y for x, y in zip(r1, a1, strict=True))
                 + 4 * s * sum(x * y for x, y in zip(ga, a1, strict=True)) + 2 * aga)
    # In t = log s: F_t = s F_s, F_tt = s² F_ss + s F_s.
    return cost, s * slope, s * s * curvature + s * slope, a

  return evaluate


def explained_terms(s, projections: list, q: list, g: list):
  """`Σ_i f_i(s)` and its first two s-derivatives, `f_i = s²(p_i − s q_i)²/(1 + s² g_i)`.

  The part of the data that the basis explains in the eigenbasis of
  `search.profile_unweighted`, unrolled over i (lists of arrays), so that it
  fuses into one elementwise loop.

  Args:
    s: scale s > 0, an array.
    projections, q, g: J arrays each, p_i, q_i and g_i ≥ 0, broadcasting with s.

  Returns:
    (Σ f_i, Σ df_i/ds, Σ d²f_i/ds²).
  """
  total = slope = curvature = 0.0
  for p_i, q_i, g_i in zip(projections, q, g, strict=True):
    h = p_i - s * q_i
    sh = s * h
    inv = 1.0 / (1.0 + s * s * g_i)  # 1/D, D = 1 + s²g
    f = sh * sh * inv  # N/D, N = s²h²
    d_den = 2.0 * s * g_i
    df = (2.0 * sh * (h - s * q_i) - f * d_den) * inv  # (N' − f D')/D
    d2num = 2.0 * (h * h - 4.0 * s * q_i * h + s * s * q_i * q_i)
    d2f = (d2num - 2.0 * df * d_den - 2.0 * g_i * f) * inv  # (N'' − 2f'D' − fD'')/D
    total, slope, curvature = total + f, slope + df, curvature + d2f
  return total, slope, curvature


def newton_step(slope, curvature):
  """A safeguarded Newton step on t = log s: −F_t/F_tt, downhill where F_tt ≤ 0, |step| ≤ 1.5."""
  step = jnp.where(curvature > 0, -slope / jnp.where(curvature > 0, curvature, 1.0),
                   -jnp.sign(slope))
  return jnp.clip(jnp.where(jnp.isfinite(step), step, 0.0), -1.5, 1.5)


def safeguarded_newton(evaluate, start, iterations: int):
  """Safeguarded Newton minimisation of a one-dimensional F(t), elementwise.

  From `start`, steps `newton_step(F_t, F_tt)`; a trial is accepted only if
  it lowers F, otherwise the step shrinks (×0.3) back towards the best
  point, so F never increases. F is evaluated at the start and at
  `iterations` trials.

  Every evaluation happens inside the loop and reaches the next iteration
  through the loop state as one array, F and the Newton step packed as the
  real and imaginary parts of one complex number: XLA's CPU compiler fuses
  an elementwise evaluation into each of its consumers, so with F, F_t and
  F_tt as three outputs it computed the evaluation (a factorisation, for
  `exact_profile`) three times a step (RESULTS.md, session 16).

  Args:
    evaluate: t -> (F, F_t, F_tt), F with +inf where not finite; real arrays.
    start: t to start from, an array broadcasting with F.
    iterations: number of trials after the start (static).

  Returns:
    (best t, F at it).
  """
  shape = jax.eval_shape(evaluate, start)[0]
  start = jnp.broadcast_to(start, shape.shape).astype(shape.dtype)
  inf = jnp.full(shape.shape, jnp.inf, shape.dtype)
  zero = jnp.zeros(shape.shape, shape.dtype)

  def packed(trial):
    value, slope, curvature = evaluate(trial)
    return jax.lax.complex(value, newton_step(slope, curvature))

  def accept(best, best_value, step, trial, evaluation):
    value = jnp.real(evaluation)
    better = value < best_value
    best = jnp.where(better, trial, best)
    best_value = jnp.where(better, value, best_value)
    step = jnp.where(better, jnp.imag(evaluation), 0.3 * step)
    return best, best_value, step

  def body(_, state):
    best, best_value, step = accept(*state)
    trial = best + step
    return best, best_value, step, trial, packed(trial)

  # A first trip with a dummy evaluation (never better) moves to the start
  # with a zero step, so that the start, too, is evaluated inside the loop.
  state = (start, inf, zero, start, jax.lax.complex(inf, zero))
  state = jax.lax.fori_loop(0, iterations + 1, body, state)
  best, best_value, _ = accept(*state)
  return best, best_value


def exact_profile(gram: dict, rhs: list, norm2, inv_var, inv_variances: list, start_scale,
                  *, iterations: int, coeffs: bool = True):
  """Minimises the exact objective of one (component, yaw) over s > 0 and a.

  `F(s, a) = ||D(w − s·A_θ(μ + E a))||²/σ² + Σ_j a_j²/λ_j` (docs/method.md
  §4.3). For a fixed s the minimum over a is a ridge regression,
  `a(s) = H(s)⁻¹ r(s)` with `H = s² EᵀA_θᵀD²A_θE/σ² + Λ⁻¹` and
  `r = s EᵀA_θᵀD²(w − s A_θμ)/σ²`, so `F(s) = min_a F(s, a)` is a
  one-dimensional profile. It is minimised by Newton steps on t = log s
  (which keeps s > 0) with exact first and second derivatives
  (`dF/ds = ∂F/∂s` at a(s), `d²F/ds²` from `da/ds = H⁻¹(∂r/∂s − ∂H/∂s a)`);
  a step is accepted only if it lowers F, otherwise it is shrunk back
  towards the best point, so F never increases.

  Args:
    gram: {(i, j): array} for i ≤ j < P, the entries of `A_θᵀ D² A_θ` (index 0
      the mean column A_θμ, 1..J the basis columns A_θE), translation
      eliminated, without any prior term; normalised 2D units².
    rhs: P arrays, `A_θᵀ D² w`.
    norm2: `||D w||²`.
    inv_var: 1/σ², σ the 2D noise in normalised units (σ_obs).
    inv_variances: J arrays or scalars, 1/λ_j.
    start_scale: s to start from (> 0).
    iterations: Newton iterations (static).
    coeffs: also return a (static); without it, the solve for a is skipped.

  Returns:
    (cost, scale, coeffs): F at the optimum, s > 0, and a (J arrays, or None
    without `coeffs`); all broadcast to the common shape of the inputs.
  """
  evaluate = profile(gram, rhs, norm2, inv_var, inv_variances)

  def search_evaluate(log_scale):
    # Without a: its J outputs would each be a consumer of the solve, which
    # XLA fuses into every one of them (the solve ran J + 3 times a step).
    cost, slope, curvature, _ = evaluate(log_scale)
    return jnp.where(jnp.isfinite(cost), cost, jnp.inf), slope, curvature

  best, best_cost = safeguarded_newton(search_evaluate, jnp.log(start_scale), iterations)
  if not coeffs:
    return best_cost, jnp.exp(best), None
  _, _, _, best_a = evaluate(best)  # a at the optimum: one more solve
  return best_cost, jnp.exp(best), [jnp.broadcast_to(x, best.shape) for x in best_a]
