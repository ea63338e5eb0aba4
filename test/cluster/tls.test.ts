/**
 * Every listener of `serve --workers 2` is shared by both workers: HTTPS on
 * the main port and the plain-HTTP download listener beside it.
 */
import fs from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { freePort, makeTempDir, selfSignedCert, sha256Hex, testBytes } from '../helpers/env.js';
import { WORKER_HEADER, startCluster, type RunningCluster } from './helpers.js';

const data = testBytes(200 * 1024, 'cluster-tls');

/** One GET on a fresh connection: status, answering worker and body. */
function get(url: string, ca: Buffer): Promise<{ status: number; worker: number; body: Buffer }> {
  const client = url.startsWith('https:') ? https : http;
  return new Promise((resolve, reject) => {
    client
      .get(url, { agent: false, ca }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            worker: Number(res.headers[WORKER_HEADER]),
            body: Buffer.concat(chunks),
          }),
        );
        res.on('error', reject);
      })
      .on('error', reject);
  });
}

describe('serve --workers 2 with TLS and a plain download listener', () => {
  let certDir: string;
  let ca: Buffer;
  let plainPort: number;
  let c: RunningCluster;

  beforeAll(async () => {
    certDir = await makeTempDir('goldmirror-cluster-tls-');
    const { certFile, keyFile } = selfSignedCert(certDir);
    ca = await fs.readFile(certFile);
    plainPort = await freePort();
    c = await startCluster(
      2,
      { MIRROR_TLS_CERT: certFile, MIRROR_TLS_KEY: keyFile, MIRROR_HTTP_PORT: String(plainPort) },
      async (env) => {
        await fs.mkdir(env.MIRROR_DATA_DIR!, { recursive: true });
        const file = path.join(path.dirname(env.MIRROR_DATA_DIR!), 'tls.pvmp');
        await fs.writeFile(file, data);
        const imported = await runCli(['import', file, '--json'], env);
        expect(imported.code, imported.stderr).toBe(0);
      },
    );
  });
  afterAll(async () => {
    await c?.stop();
    if (certDir) await fs.rm(certDir, { recursive: true, force: true });
  });

  for (const listener of ['HTTPS', 'plain HTTP'] as const) {
    it(`serves download links over ${listener} from both workers`, async () => {
      const base = listener === 'HTTPS' ? c.base : `http://127.0.0.1:${plainPort}`;
      const workers = new Set<number>();
      for (let i = 0; i < 6; i += 1) {
        const res = await get(`${base}/d/${sha256Hex(data)}/tls.pvmp`, ca);
        expect(res.status).toBe(200);
        expect(sha256Hex(res.body)).toBe(sha256Hex(data));
        workers.add(res.worker);
      }
      expect([...workers].sort()).toEqual([...c.listening().keys()].sort());
      expect(workers.size).toBe(2);
    });
  }
});
