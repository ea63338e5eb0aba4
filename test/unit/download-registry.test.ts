import { describe, expect, it } from 'vitest';
import { BufferPool, BufferShare } from '../../server/http/buffer-pool.js';
import { clientAddress, clientAddressOfRequest, trustedProxies } from '../../server/http/client-address.js';
import { createDownloadRegistry, isRefusal, type ActiveDownload } from '../../server/http/download-registry.js';
import type { IncomingMessage } from 'node:http';

describe('download registry', () => {
  const begin = (
    registry: ReturnType<typeof createDownloadRegistry>,
    client: string,
    counted = true,
    sha256 = 'a',
    cut: () => unknown = () => undefined,
  ) => registry.begin({ sha256, client, counted, cut });

  it('counts slots in total and per client, refuses beyond each cap, and frees a slot once', () => {
    const counts: number[] = [];
    const registry = createDownloadRegistry({ maxDownloads: 3, maxDownloadsPerClient: 2 }, (n) => counts.push(n));
    const a1 = begin(registry, 'A') as ActiveDownload;
    begin(registry, 'A');
    expect(begin(registry, 'A')).toEqual({ scope: 'client', limit: 2 });
    const b1 = begin(registry, 'B');
    expect(isRefusal(b1)).toBe(false);
    expect(begin(registry, 'C')).toEqual({ scope: 'total', limit: 3 });
    // Uncounted bodies are never refused and take no slot.
    expect(isRefusal(begin(registry, 'C', false))).toBe(false);
    expect(registry.counted).toBe(3);
    a1.end();
    a1.end();
    expect(registry.counted).toBe(2);
    expect(isRefusal(begin(registry, 'A'))).toBe(false);
    expect(counts).toEqual([1, 2, 3, 2, 3]);
  });

  it('0 means no cap', () => {
    const registry = createDownloadRegistry({ maxDownloads: 0, maxDownloadsPerClient: 0 });
    for (let i = 0; i < 5000; i += 1) expect(isRefusal(begin(registry, 'A'))).toBe(false);
    expect(registry.counted).toBe(5000);
  });

  it('cuts every download of a digest once, counted or not, and none of another digest', () => {
    const registry = createDownloadRegistry({ maxDownloads: 0, maxDownloadsPerClient: 0 });
    const cuts: string[] = [];
    const one = begin(registry, 'A', true, 'x', () => cuts.push('one')) as ActiveDownload;
    begin(registry, 'B', false, 'x', () => cuts.push('two'));
    begin(registry, 'A', true, 'y', () => cuts.push('other'));
    expect(registry.cut('x')).toBe(2);
    expect(registry.cut('x')).toBe(0);
    expect(cuts.sort()).toEqual(['one', 'two']);
    // Ending after the cut frees the slot without disturbing later downloads of the digest.
    const later = begin(registry, 'A', true, 'x', () => cuts.push('later'));
    one.end();
    expect(registry.cut('x')).toBe(1);
    expect(isRefusal(later)).toBe(false);
    // 'other' and 'later' hold slots; 'one' gave its back.
    expect(registry.counted).toBe(2);
  });
  it('a download that noticed the failed check itself is counted once, whichever comes first', () => {
    const registry = createDownloadRegistry({ maxDownloads: 0, maxDownloadsPerClient: 0 });
    let cuts = 0;
    const first = begin(registry, 'A', true, 'z', () => (cuts += 1)) as ActiveDownload;
    expect(first.markCut()).toBe(true);
    expect(registry.cut('z')).toBe(0);
    const second = begin(registry, 'A', true, 'z', () => (cuts += 1)) as ActiveDownload;
    expect(registry.cut('z')).toBe(1);
    expect(second.markCut()).toBe(false);
    expect(cuts).toBe(1);
  });
});

describe('client address', () => {
  const req = (remoteAddress: string | undefined, forwardedFor?: string) =>
    ({
      socket: { remoteAddress },
      headers: forwardedFor === undefined ? {} : { 'x-forwarded-for': forwardedFor },
    }) as unknown as IncomingMessage;
  it('is the socket peer, with IPv4-mapped IPv6 written as IPv4 and IPv6 kept whole', () => {
    expect(clientAddress(req('192.168.1.20'))).toBe('192.168.1.20');
    expect(clientAddress(req('::ffff:192.168.1.20'))).toBe('192.168.1.20');
    expect(clientAddress(req('2001:db8::1'))).toBe('2001:db8::1');
    expect(clientAddress(req('2001:db8::2'))).not.toBe(clientAddress(req('2001:db8::1')));
    expect(clientAddress(req(undefined))).toBe('unknown');
    // Without trusted proxies, X-Forwarded-For is anybody's word and is ignored.
    expect(clientAddress(req('192.168.1.20', '10.9.9.9'))).toBe('192.168.1.20');
  });

  it('is the Mac behind a trusted reverse proxy, so per-client caps and the download log see each one', () => {
    const trusted = trustedProxies(['10.0.0.2/32']);
    expect(clientAddressOfRequest(req('10.0.0.2', '192.168.1.20'), trusted)).toBe('192.168.1.20');
    expect(clientAddressOfRequest(req('10.0.0.2', '192.168.1.21'), trusted)).toBe('192.168.1.21');
    // A peer that is not a trusted proxy counts as itself, whatever it claims.
    expect(clientAddressOfRequest(req('192.168.1.30', '192.168.1.20'), trusted)).toBe('192.168.1.30');
  });
});

describe('buffer pool', () => {
  it('never creates more than maxBuffers; later callers wait in order and get released buffers', async () => {
    const pool = new BufferPool(1024, 2);
    const a = pool.tryAcquire()!;
    const b = await pool.acquire();
    expect(pool.tryAcquire()).toBeNull();
    const order: number[] = [];
    const third = pool.acquire().then((buf) => (order.push(3), buf));
    const fourth = pool.acquire().then((buf) => (order.push(4), buf));
    pool.release(a);
    pool.release(b);
    expect([await third, await fourth]).toEqual([a, b]);
    expect(order).toEqual([3, 4]);
    expect(pool.inUse).toBe(2);
  });

  it('an aborted wait leaves the queue; released buffers are reused, not reallocated', async () => {
    const pool = new BufferPool(1024, 1);
    const a = pool.tryAcquire()!;
    const controller = new AbortController();
    const waiting = pool.acquire(controller.signal);
    controller.abort(new Error('client gone'));
    await expect(waiting).rejects.toThrow('client gone');
    pool.release(a);
    expect(pool.inUse).toBe(0);
    expect(pool.tryAcquire()).toBe(a);
  });

  it('validates its options', () => {
    expect(() => new BufferPool(0, 1)).toThrow(/bufferBytes/);
    expect(() => new BufferPool(1024, 0.5)).toThrow(/maxBuffers/);
  });
});

describe('buffer share', () => {
  it('lets one kind of caller hold at most its share of the pool; the rest of the pool stays available', async () => {
    const pool = new BufferPool(1024, 4);
    const share = new BufferShare(pool, 2);
    const a = share.tryAcquire()!;
    const b = await share.acquire();
    expect(share.tryAcquire()).toBeNull();
    let third: Buffer | null = null;
    const waiting = share.acquire().then((buf) => (third = buf));
    await new Promise((r) => setTimeout(r, 10));
    expect(third).toBeNull();
    // Others still get the other half of the pool.
    expect(pool.tryAcquire()).not.toBeNull();
    expect(pool.tryAcquire()).not.toBeNull();
    expect(pool.tryAcquire()).toBeNull();
    share.release(a);
    await waiting;
    expect(third).toBe(a);
    share.release(b);
    share.release(third!);
    expect(pool.inUse).toBe(2);
  });

  it('an aborted wait gives up its turn', async () => {
    const pool = new BufferPool(1024, 4);
    const share = new BufferShare(pool, 1);
    const a = share.tryAcquire()!;
    const controller = new AbortController();
    const first = share.acquire(controller.signal);
    const second = share.acquire();
    controller.abort(new Error('gone'));
    await expect(first).rejects.toThrow('gone');
    share.release(a);
    expect(await second).toBe(a);
  });
});
