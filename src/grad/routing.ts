/**
 * The backward pass of `routing`: src/reference/grad/routing.ts, and the
 * SIMD plan of ./routing-plan.ts; centroids (given or fitted) and
 * memberships are constants.
 */
import { routingBackward } from '../reference/grad/routing.js';
import { routingCentroids, type RoutingParsed } from '../variants/routing.js';
import type { Backward } from './backward.js';
import { toFloat32 } from './params.js';
import { routingBackwardPlan } from './routing-plan.js';

export const routing: Backward<RoutingParsed> = {
  reference({ q, k, v }, p, gradOutput) {
    const g = routingBackward(q!, k!, v!, { ...p, centroids: routingCentroids(q!, k!, p) }, gradOutput.data);
    return { q: toFloat32(g.q), k: toFloat32(g.k), v: toFloat32(g.v), params: {} };
  },
  plan(runtime, { q, k, v }, p, gradOutput) {
    return routingBackwardPlan(runtime, q!, k!, v!, gradOutput, p);
  },
};
