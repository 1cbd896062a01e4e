// Starts `qwenvk serve` on the fixture model on a free port, and stops it as Ctrl-C would.
// QWENVK_BINARY and QWENVK_TEST_MODEL (set by CTest) name the program and the model.
import { spawn } from 'node:child_process';
import { once } from 'node:events';

export const binary = process.env.QWENVK_BINARY;
export const model = process.env.QWENVK_TEST_MODEL;
if (!binary || !model) throw new Error('set QWENVK_BINARY and QWENVK_TEST_MODEL (CTest does)');

export async function startServer(args = []) {
  // Validation on: any Vulkan validation message makes the server exit with status 3 when stopped.
  const child = spawn(binary, ['serve', '--model', model, '--port', '0', ...args], {
    env: { ...process.env, QWENVK_VALIDATION: '1' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let log = '';
  const exited = once(child, 'exit');
  const port = await new Promise((resolve, reject) => {
    child.stderr.on('data', (data) => {
      log += data;
      const listening = /listening on http:\/\/[^:]+:(\d+)/.exec(log);
      if (listening) resolve(Number(listening[1]));
    });
    exited.then(([code]) => reject(new Error(`qwenvk serve exited with ${code} before listening:\n${log}`)));
  });
  return {
    pid: child.pid,
    port,
    origin: `http://127.0.0.1:${port}`,
    baseURL: `http://127.0.0.1:${port}/v1`,
    log: () => log,
    // SIGTERM, then the exit status (0: a clean stop, no validation message).
    async stop() {
      if (child.exitCode === null) child.kill('SIGTERM');
      const [code] = await exited;
      return code;
    },
  };
}

// `qwenvk generate` on the same model: what the server's greedy replies must equal.
export async function generate(args) {
  const child = spawn(binary, ['generate', '--model', model, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (data) => (stdout += data));
  child.stderr.on('data', (data) => (stderr += data));
  const [code] = await once(child, 'exit');
  if (code !== 0) throw new Error(`qwenvk generate exited with ${code}:\n${stderr}`);
  return stdout;
}
