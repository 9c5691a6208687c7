// Property suite, malformed calls: one place of a valid call (an input, its
// data or dims, any option at any depth, the options object) holds a
// hostile value. Each entry point must then throw a TypeError or RangeError
// naming that place, or, where the SPEC gives the value a meaning, return
// what that meaning defines, promptly (backward included); memory in use returns to its level
// and the next valid call is exact. A getter that throws the user's own
// error lets it propagate unchanged (the library does not wrap what it did
// not raise), with the same guarantees on memory and the next call.
import { fc, test } from '@fast-check/vitest';
import { afterAll, beforeAll, describe, expect } from 'vitest';
import { variantNames, type Attention, type VariantName } from '../dist/index.js';
import { lengthOf, small, takesWeights, validCall, type Call } from './arbitraries.js';
import { wellConditioned } from './conditioning.js';
import { FUZZING, fuzzParams } from './fuzz.js';
import { maxAbsDiff } from './golden.js';
import { equivalentCall, getAt, hostileArb, makesOtherShape, namesPath, setAt, UserError, type Path } from './hostile.js';
import { bytes, comparedBackends } from './backends.js';

let one: Attention;
let two: Attention;
let js: Attention;
beforeAll(async () => ({ one, two, js } = await comparedBackends()));
afterAll(() => two.dispose());

const patternVariants = new Set<VariantName>(['local', 'strided', 'global', 'sparse']);
/** A hostile call on these small problems that takes longer than this is a hang. */
const PROMPT_MS = 5000;

type Outcome = { ok: Float32Array } | { error: unknown };

async function attempt(run: () => unknown): Promise<Outcome> {
  const start = performance.now();
  let outcome: Outcome;
  try {
    const result = (await run()) as { data: Float32Array } | Uint8Array;
    outcome = { ok: result instanceof Uint8Array ? new Float32Array(result) : result.data };
  } catch (error) {
    outcome = { error };
  }
  expect(performance.now() - start).toBeLessThan(PROMPT_MS);
  return outcome;
}

/**
 * A failure must be a TypeError / RangeError naming the place, or the user's
 * own error; when the hostile value is a sound tensor of another shape, a
 * RangeError naming the argument it no longer agrees with will do.
 */
function expectNamed(outcome: Outcome, path: Path, conflict: boolean): void {
  if (!('error' in outcome)) return;
  const { error } = outcome;
  if (error instanceof UserError || (conflict && error instanceof RangeError)) return;
  expect(error instanceof TypeError || error instanceof RangeError, String(error)).toBe(true);
  expect(namesPath((error as Error).message, path), `${(error as Error).message} should name ${path}`).toBe(true);
}

/** Every number among the options, at any depth (tensors aside), is of moderate size. */
function moderate(value: unknown): boolean {
  if (typeof value === 'number') return Math.abs(value) <= 1e3;
  if (ArrayBuffer.isView(value) || value === null || typeof value !== 'object') return true;
  return Object.values(value).every(moderate);
}

/** What an error is, leaving out the value it received: its class and the argument it names. */
const kindOf = (error: unknown) => `${(error as Error)?.constructor?.name}: ${String((error as Error)?.message).split(':')[0]}`;

/** Two outcomes agree: the same bits, or the same kind of error. */
function expectSame(got: Outcome, want: Outcome): void {
  if ('ok' in want) {
    expect('ok' in got, 'error' in got ? String(got.error) : '').toBe(true);
    if ('ok' in got) expect(bytes(got.ok)).toEqual(bytes(want.ok));
  } else {
    expect('error' in got, 'the call it means threw ' + String(want.error)).toBe(true);
    if ('error' in got) expect(kindOf(got.error)).toBe(kindOf(want.error));
  }
}

/**
 * The outcome of a hostile call that has a meaning: that of the ordinary
 * call it means (its result, or the error that call raises: an absent
 * option another one needed), or a RangeError naming the place (the SPEC
 * lets a value past its meaning be refused); a null may also be refused
 * as a wrong type (the SPEC makes undefined absent, and is silent on null).
 */
function expectMeaning(got: Outcome, want: Outcome, path: Path, value: unknown): void {
  if ('error' in got && (got.error instanceof RangeError || (value === null && got.error instanceof TypeError)) && namesPath(got.error.message, path)) return;
  expectSame(got, want);
}

/** A valid call a hostile value made (a 0, a 0.5, a true where they are allowed): its result is an ordinary one. */
function expectOrdinary(call: Call, got: Float32Array, reference: Float32Array): void {
  if (wellConditioned(call) && moderate(call.options)) {
    expect(maxAbsDiff(got, reference)).toBeLessThanOrEqual(1e-3 * Math.max(1, ...Array.from(reference, Math.abs)));
  } else {
    expect(got.every(Number.isFinite)).toBe(true);
  }
}

/** mask() takes one batch: the valid call's key padding cut to batch 0. */
function maskOptions(base: Call, call: Call, path: Path): unknown {
  const options = call.options as Record<string, unknown> | undefined;
  const pad = base.options.keyPadding as Uint8Array | undefined;
  if (!pad || path === 'options' || path.startsWith('options.keyPadding')) return options;
  return { ...options, keyPadding: pad.subarray(0, lengthOf(base, base.v)) };
}

describe('property: hostile values throw a named error or mean what the SPEC says', () => {
  for (const name of variantNames) {
    const cases = validCall(name, small).chain((call) => fc.tuple(fc.constant(call), hostileArb(call)));
    test.prop([cases], fuzzParams(40))(name, async ([base, { path, make }]) => {
      const value = make(getAt(base, path));
      const call = setAt(base, path, value);
      const equivalent = equivalentCall(base, path, value);
      const baseTensor = one.apply(name, base.q, base.k, base.v, base.options);
      const baseOut = baseTensor.data;
      // backward's gradOutput, of the valid call's output dims (a hostile shape elsewhere may disagree with it)
      const gradOutput = { data: baseOut.map((_, n) => Math.sin(n)), dims: [...baseTensor.dims] };
      const inUse = [one.memory.inUse, two.memory.inUse];

      // every entry point, on the hostile call and (where it has a meaning) on the call it means
      const entries = (c: Call) => {
        const runs: (() => unknown)[] = [() => one.apply(name, c.q, c.k, c.v, c.options), () => two.run(name, c.q, c.k, c.v, c.options), () => js.apply(name, c.q, c.k, c.v, c.options)];
        if (!path.startsWith('v') && takesWeights(base)) runs.push(() => one.weights(name, c.q, c.k, c.options));
        if (patternVariants.has(name) && path.startsWith('options')) {
          const [Nq, Nk] = [lengthOf(base, base.q!), lengthOf(base, base.k!)];
          runs.push(() => one.mask(name, Nq, Nk, maskOptions(base, c, path) as object));
        }
        // the gradients' v stands for the whole backward result (v is the one gradient every variant has)
        runs.push(() => one.backward(name, c.q, c.k, c.v, gradOutput, c.options).v, () => js.backward(name, c.q, c.k, c.v, gradOutput, c.options).v);
        return runs;
      };
      const outcomes: Outcome[] = [];
      for (const run of entries(call)) outcomes.push(await attempt(run));
      const [sync, pooled, reference] = outcomes;
      if (equivalent) {
        const meant = entries(equivalent);
        for (let i = 0; i < outcomes.length; i++) expectMeaning(outcomes[i], await attempt(meant[i]), path, value);
      } else {
        for (const outcome of outcomes) expectNamed(outcome, path, makesOtherShape(base, path, value));
        // the backends and entry points agree on whether the call is valid
        expect('ok' in pooled).toBe('ok' in sync);
        expect('ok' in reference).toBe('ok' in sync);
        if ('ok' in sync && 'ok' in pooled && 'ok' in reference) {
          expect(bytes(pooled.ok)).toEqual(bytes(sync.ok));
          expectOrdinary(call, sync.ok, reference.ok);
        }
      }

      // memory back at its level, and the next valid call exact
      expect([one.memory.inUse, two.memory.inUse]).toEqual(inUse);
      expect(bytes(one.apply(name, base.q, base.k, base.v, base.options).data)).toEqual(bytes(baseOut));
      expect(bytes((await two.run(name, base.q, base.k, base.v, base.options)).data)).toEqual(bytes(baseOut));
    }, FUZZING ? 3_600_000 : 60_000);
  }
});
