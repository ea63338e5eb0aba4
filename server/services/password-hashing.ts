/**
 * scrypt password hashes behind one small queue per process. scrypt runs on
 * libuv's thread pool (4 threads), which file reads of downloads and tus
 * writes share: without a limit, a burst of sign-ins occupies every thread
 * and a 1 MiB range read waits seconds behind it. At most HASH_CONCURRENCY
 * hashes run; a few more may wait; beyond that the caller is told at once
 * to come back later (503 AUTH_BUSY with Retry-After) instead of piling up.
 */
import { randomBytes, scrypt as scryptCb, timingSafeEqual, type ScryptOptions } from 'node:crypto';
import PQueue from 'p-queue';
import { AppError } from '../errors.js';

const SCRYPT = { N: 2 ** 15, r: 8, p: 1, keylen: 32, maxmem: 64 * 1024 * 1024 };
/** One hash at a time leaves three pool threads (and one of two cores) to transfers. */
export const HASH_CONCURRENCY = 1;
/** Hashes allowed to wait; at ~100 ms a hash the last one starts within about a second. */
export const HASH_QUEUE_LIMIT = 8;
const BUSY_RETRY_AFTER_SECONDS = 2;

const queue = new PQueue({ concurrency: HASH_CONCURRENCY });
let hashesRun = 0;

/** How busy the queue is, and how many hashes this process has computed (tests and diagnostics). */
export function hashingState(): { running: number; waiting: number; hashesRun: number } {
  return { running: queue.pending, waiting: queue.size, hashesRun };
}

function scrypt(password: string, salt: Buffer, keylen: number, options: ScryptOptions): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    scryptCb(password, salt, keylen, options, (err, key) => (err ? reject(err) : resolve(key))),
  );
}

/**
 * Throws AUTH_BUSY when the queue is full. Sign-in calls it before any
 * database work too, so refusing a burst costs next to nothing.
 */
export function assertHashingCapacity(): void {
  if (queue.size >= HASH_QUEUE_LIMIT) {
    throw new AppError('AUTH_BUSY', 'too many password checks are running; try again in a few seconds', {
      retryAfterSeconds: BUSY_RETRY_AFTER_SECONDS,
    });
  }
}

/** Runs one scrypt through the queue, or throws AUTH_BUSY at once when the queue is full. */
function queuedScrypt(password: string, salt: Buffer, keylen: number, options: ScryptOptions): Promise<Buffer> {
  assertHashingCapacity();
  return queue.add(async () => {
    hashesRun += 1;
    return scrypt(password, salt, keylen, options);
  });
}

/** `scrypt$N$r$p$salt$hash` with base64url parts: the parameters travel with the hash. */
export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  const key = await queuedScrypt(password, salt, SCRYPT.keylen, SCRYPT);
  return ['scrypt', SCRYPT.N, SCRYPT.r, SCRYPT.p, salt.toString('base64url'), key.toString('base64url')].join('$');
}

/** True when `password` hashes to `stored`; compared in constant time. */
export async function verifyPassword(stored: string, password: string): Promise<boolean> {
  const [scheme, n, r, p, saltText, keyText] = stored.split('$');
  if (scheme !== 'scrypt' || !saltText || !keyText) return false;
  const expected = Buffer.from(keyText, 'base64url');
  const key = await queuedScrypt(password, Buffer.from(saltText, 'base64url'), expected.length, {
    N: Number(n),
    r: Number(r),
    p: Number(p),
    maxmem: SCRYPT.maxmem,
  });
  return key.length === expected.length && timingSafeEqual(key, expected);
}
