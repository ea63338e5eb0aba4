import { describe, expect, it } from 'vitest';
import { sha256Hex, startMirror, testBytes, testStream } from '../helpers/env.js';

describe('test helpers', () => {
  it('testStream yields the same bytes as testBytes', async () => {
    const chunks: Buffer[] = [];
    for await (const c of testStream(1000, 's', 64)) chunks.push(c);
    expect(Buffer.concat(chunks).equals(testBytes(1000, 's'))).toBe(true);
  });

  it('starts a mirror that answers /healthz', async () => {
    const mirror = await startMirror();
    try {
      const res = await fetch(`${mirror.url}/healthz`);
      expect(res.status).toBe(200);
      expect(sha256Hex(testBytes(10))).toMatch(/^[0-9a-f]{64}$/);
    } finally {
      await mirror.close();
    }
  });
});
