// Compiles the four builds of assembly/ (plain and relaxed SIMD, each with
// private or shared memory), two at a time: the machines have two cores.
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';

const asc = createRequire(import.meta.url).resolve('assemblyscript/bin/asc.js');
const targets = ['release', 'relaxed', 'shared', 'relaxed-shared'];

const build = (target) =>
  new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [asc, 'assembly/index.ts', '--target', target], { stdio: 'inherit' });
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`asc --target ${target} exited with ${code}`))));
  });

const queue = [...targets];
const lane = async () => {
  while (queue.length) await build(queue.shift());
};
await Promise.all([lane(), lane()]);
