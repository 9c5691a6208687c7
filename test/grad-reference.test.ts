// The float64 reference backward of every variant against central finite differences of its
// own forward reference (the JS backend), on the small problems of test/grad-cases.ts: a few
// sampled coordinates of q, k, v and of every parameter tensor.
//
// The forward returns float32, so the objective sum(out * gradOutput) carries a rounding noise
// of about sqrt(#outputs) * 6e-8 * |out| |gradOutput| (~1e-6 here). A step h = 1e-2 keeps that
// noise near 1e-4 of a central difference; Richardson's extrapolation (4 D(h) - D(2h)) / 3
// removes the O(h^2) truncation error, leaving O(h^4) ~ 1e-8. So 1e-3 (1 + |gradient|) is
// tight against a wrong formula (which is off by O(|gradient|)) and loose against that noise.
// Coordinates where the forward is not smooth over [x - 2h, x + 2h] (an lsh bucket, a routing
// membership or a relu switching) are told apart (test/grad-fd.ts) and skipped.
import { beforeAll, describe, expect, it } from 'vitest';
import { createAttention, type Attention, type Tensor, type VariantName } from '../dist/index.js';
import { Rng } from '../src/prng.js';
import { gradCases, type GradCase } from './grad-cases.js';
import { randn } from './random.js';
import { richardson } from './grad-fd.js';
import { flatParams } from './grad-golden.js';

const STEP = 1e-2;
const TOLERANCE = 1e-3;
const SAMPLES = 3;
/** The objective's float32 rounding on these problems, about (see above). */
const NOISE = 1e-6;

let js: Attention;
beforeAll(async () => {
  js = await createAttention({ backend: 'js' });
});

/** The option tensor at a dotted `params.a.b` path of the options. */
function optionAt(options: Record<string, unknown>, path: string): Tensor {
  return path.split('.').slice(1).reduce<unknown>((at, key) => (at as Record<string, unknown>)[key], options) as Tensor;
}

/** sum(out * gradOutput) in float64. */
function objective(c: GradCase, gradOutput: Tensor): number {
  const out = js.apply(c.variant as VariantName, c.q, c.k, c.v, c.options);
  let sum = 0;
  for (let n = 0; n < out.data.length; n++) sum += out.data[n] * gradOutput.data[n];
  return sum;
}

describe.each(gradCases.map((c) => [c.name, c] as const))('%s', (_name, c) => {
  it('matches central finite differences of the forward', () => {
    const out = js.apply(c.variant as VariantName, c.q, c.k, c.v, c.options);
    const gradOutput = randn([...out.dims], 7);
    const g = js.backward(c.variant as VariantName, c.q, c.k, c.v, gradOutput, c.options);
    const checked: [string, Tensor, Tensor][] = [];
    for (const input of ['q', 'k', 'v'] as const) {
      const x = c[input];
      if (x && g[input]) checked.push([input, x, g[input]!]);
    }
    if (c.k === c.q && g.q && g.k) {
      // one tensor given as q and k: its gradient is the sum of both
      checked.splice(0, 2, ['q and k', c.q!, { data: g.q.data.map((x, n) => x + g.k!.data[n]), dims: g.q.dims }]);
    }
    for (const [path, grad] of flatParams(g.params)) checked.push([path, optionAt(c.options, path), grad]);
    expect(checked.length).toBeGreaterThan(0);
    const rng = new Rng(1);
    for (const [name, x, grad] of checked) {
      expect(grad.dims, `${name}.dims`).toEqual(x.dims);
      let accepted = 0;
      for (let attempt = 0; attempt < 12 && accepted < SAMPLES; attempt++) {
        const index = rng.int(x.data.length);
        const fd = richardson(() => objective(c, gradOutput), x.data, index, STEP, (estimate) => TOLERANCE * (1 + Math.abs(estimate)), NOISE);
        if (fd === null) continue; // not smooth here
        expect(Math.abs(fd - grad.data[index]), `${name}[${index}]: finite difference ${fd}, backward ${grad.data[index]}`).toBeLessThanOrEqual(TOLERANCE * (1 + Math.abs(fd)));
        accepted++;
      }
      expect(accepted, `${name}: smooth coordinates`).toBeGreaterThanOrEqual(2);
    }
  });
});
