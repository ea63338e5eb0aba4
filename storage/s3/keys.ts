/**
 * The only module that builds object keys, the bucket's counterpart of
 * layout.ts. Under the configured prefix:
 *
 *   blobs/sha256/<aa>/<aabb…>          committed blobs, named by their full digest
 *   tmp/ingest-<writer>-<rand>         an ingest of unknown digest, before its copy to blobs/
 *   tmp/ingest-<writer>-<rand>.json    the multipart upload an ingest has open (aborted if its writer dies)
 *   tmp/probe-<writer>-<rand>          the start-up write check
 *   quarantine/<digest>-<time>         blobs that failed verification, never served
 *   uploads/<id>[.info|.part]          resumable browser uploads (tus: the object, its metadata, a short tail)
 *
 * As in layout.ts, every key comes from a validated digest or from this process.
 */
import { randomBytes } from 'node:crypto';
import { isSha256, type Sha256 } from '../digest.js';
import { thisWriter } from '../layout.js';

/** The writer as it appears in keys: `~` for `@`, so no key ever needs percent-encoding (in a copy source, say). */
const writer = thisWriter.replace('@', '~');

export interface Keys {
  /** The prefix with its trailing slash, or '' (every key below starts with it). */
  readonly prefix: string;
  readonly blobsPrefix: string;
  readonly tmpPrefix: string;
  readonly quarantinePrefix: string;
  readonly uploadsPrefix: string;
  blob(sha256: Sha256): string;
  /** A fresh temp object name and the name of its upload marker. */
  newIngest(): { object: string; marker: string };
  newProbe(): string;
  quarantine(sha256: Sha256, atMs: number): string;
  /** The digest of a committed blob's key, or null for anything else under blobs/. */
  digestOf(key: string): Sha256 | null;
}

export function createKeys(prefix: string): Keys {
  const base = prefix === '' ? '' : `${prefix.replace(/^\/+|\/+$/g, '')}/`;
  const blobsPrefix = `${base}blobs/sha256/`;
  const tmpPrefix = `${base}tmp/`;
  const assertDigest = (sha256: string): void => {
    if (!isSha256(sha256)) throw new Error(`not a sha256 digest: ${JSON.stringify(sha256)}`);
  };
  return Object.freeze({
    prefix: base,
    blobsPrefix,
    tmpPrefix,
    quarantinePrefix: `${base}quarantine/`,
    uploadsPrefix: `${base}uploads/`,
    blob(sha256: Sha256) {
      assertDigest(sha256);
      return `${blobsPrefix}${sha256.slice(0, 2)}/${sha256}`;
    },
    newIngest() {
      const object = `${tmpPrefix}ingest-${writer}-${randomBytes(8).toString('hex')}`;
      return { object, marker: `${object}.json` };
    },
    newProbe() {
      return `${tmpPrefix}probe-${writer}-${randomBytes(8).toString('hex')}`;
    },
    quarantine(sha256: Sha256, atMs: number) {
      assertDigest(sha256);
      return `${base}quarantine/${sha256}-${atMs}`;
    },
    digestOf(key: string) {
      if (!key.startsWith(blobsPrefix)) return null;
      const [fanout, name, ...rest] = key.slice(blobsPrefix.length).split('/');
      return rest.length === 0 && name && isSha256(name) && fanout === name.slice(0, 2) ? name : null;
    },
  });
}

/** What a name under tmp/ is: the writer is parsed as in layout.ts, so liveness is decided the same way. */
export function parseTmpName(
  name: string,
): { kind: 'ingest' | 'marker' | 'probe'; pid: number; host: string | null } | null {
  const match = /^(ingest|probe)-(\d+)~([a-z0-9.-]+)-[0-9a-f]+(\.json)?$/.exec(name);
  if (!match?.[2]) return null;
  const kind = match[4] ? (match[1] === 'ingest' ? 'marker' : null) : (match[1] as 'ingest' | 'probe');
  return kind ? { kind, pid: Number(match[2]), host: match[3] ?? null } : null;
}
