// The module's exports: integers and pointers only. The TypeScript side
// (src/runtime/) binds them once at load time.
export { heapBase, relaxedSimd } from './core/memory';
export { groupBytes, packBytes, packHead } from './core/flash-layout';
export { fullAttentionRows } from './variants/full';
export { shareCovers, termsBytes, writeTerms } from './core/terms';
export { gemm, transpose } from './core/gemm';
export { inverseNorms } from './core/gather';
export * from './variants/sinkhorn';
export * from './variants/patterns';
export * from './variants/linformer';
export * from './variants/compressed';
export * from './variants/synthesizer';
export * from './variants/lsh';
export * from './variants/linear';
export * from './variants/routing';
export { attentionRows } from './variants/full';
export { kvAppend, kvBlockBytes, kvShift } from './variants/kvcache';
export * from './variants/recurrent';
export * from './grad/full';
export * from './grad/linear';
export * from './grad/linformer';
export * from './grad/patterns';
export * from './grad/slots';
export * from './grad/synthesizer';
export * from './grad/compressed';
export * from './grad/sinkhorn';
export * from './grad/routing';
export * from './grad/lsh';
