/**
 * The tus datastore when packages live in a bucket (MIRROR_STORAGE=s3):
 * @tus/s3-store, so that an upload is a multipart upload in the bucket every
 * node shares and any node continues it. Its objects (the upload `<id>`, its
 * metadata `<id>.info` and the short tail of a PATCH `<id>.part`) live under
 * the store's uploads/ key prefix. What it changes in the library:
 * - Keys: a client middleware puts every key it names under uploads/.
 * - No metadata cache: the .info in the bucket is the truth every node reads.
 * - Parts are buffered in the data dir's tmp/ (named like other temp files,
 *   so a dead writer's are cleaned up at start), at most PARTS_ON_DISK at a
 *   time, and sent strictly in order: a failed part never leaves a later one
 *   behind a gap, which would make the offset count bytes that are not there.
 * - The free-space guard watches that local tmp/ only; an upload out of room
 *   keeps what reached the bucket and can be resumed.
 * - Each PATCH body is hashed on its way. The digest is offered to the ingest
 *   only when this process received every byte: each PATCH first checks that
 *   the upload's parts and tail are exactly those this process wrote (by their
 *   ETags); after a PATCH on another node the digest comes from reading the object.
 * - Expiry lists uploads/ itself (no ListMultipartUploads of the whole bucket, no tags).
 */
import { createReadStream } from 'node:fs';
import fs from 'node:fs/promises';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Hash } from 'node:crypto';
import { S3Store, type MetadataValue } from '@tus/s3-store';
import { ERRORS, StreamSplitter, type KvStore, type Upload } from '@tus/server';
import { newSha256, type Sha256 } from '../../storage/digest.js';
import { isNotFound, isNotImplemented, type S3UploadTarget } from '../../storage/s3/client.js';
import { AppError, isError, toAppError } from '../errors.js';
import { RunningWrites, tusAnswer, type TrackedUploadStore } from './upload-server.js';

/** Preferred part size; an upload over MAX_UPLOAD_PARTS of them (about 8 GB) gets larger parts. */
const PART_BYTES = 8 * 1024 * 1024;
/** Part files a PATCH keeps in tmp/ at once: one being received while the previous one is sent. */
const PARTS_ON_DISK = 2;
/** While a PATCH writes, the local reserve is looked at again this often. */
const GUARD_EVERY_BYTES = 16 * 1024 * 1024;

/** Bytes [0, offset) of an upload hashed in order, and the parts and tail this process wrote, by ETag. */
interface BucketHashState {
  hash: Hash;
  offset: number;
  parts: Map<number, string>;
  tail: string | null;
}

export interface BucketStoreOptions {
  /** A fresh temp file path in the data dir's tmp/ (storage/layout.ts newTmpFile). */
  newTmpFile: () => string;
  /** Free bytes of tmp/'s filesystem minus the reserve (minFreeBytes). */
  headroom: () => Promise<number>;
  /** Whether this process still holds the upload's lock (writes stop at once when not). */
  fence: (id: string) => boolean;
  expirationPeriodInMilliseconds: number;
}

/** A cache that keeps nothing: another node may have changed the .info since (a declared length, say). */
const noCache: KvStore<MetadataValue> = {
  get: () => Promise.resolve(undefined),
  set: () => Promise.resolve(),
  delete: () => Promise.resolve(),
};

/** ETags come quoted or not depending on the call and the server. */
const bareTag = (tag: string | undefined): string => (tag ?? '').replaceAll('"', '');

/** StreamSplitter writing its chunks to temp files named by the data dir's layout. */
class TmpFileSplitter extends StreamSplitter {
  readonly #newTmpFile: () => string;

  constructor(chunkSize: number, newTmpFile: () => string) {
    super({ chunkSize, directory: '' });
    this.#newTmpFile = newTmpFile;
  }

  override async _newChunk(): Promise<void> {
    const file = this.#newTmpFile();
    await this.emitEvent('beforeChunkStarted', file);
    this.currentChunkPath = file;
    const handle = await fs.open(file, 'wx', 0o600);
    await this.emitEvent('chunkStarted', file);
    this.currentChunkSize = 0;
    this.fileHandle = handle;
  }
}

export const MAX_UPLOAD_PARTS = 1_000;

export class HashingBucketStore extends S3Store implements TrackedUploadStore {
  readonly running = new Map<string, BucketHashState>();
  readonly #writes = new RunningWrites();
  readonly #keyPrefix: string;
  readonly #options: BucketStoreOptions;

  constructor(target: S3UploadTarget, options: BucketStoreOptions) {
    super({
      s3ClientConfig: { ...target.clientConfig, bucket: target.bucket },
      partSize: PART_BYTES,
      // OpenStack Swift's default limit (S3 allows 10,000): a 60 GB upload then goes in parts of about 60 MiB.
      maxMultipartParts: MAX_UPLOAD_PARTS,
      maxConcurrentPartUploads: PARTS_ON_DISK,
      // Tags are unsupported on Swift and some others; expiry lists uploads/ instead.
      useTags: false,
      cache: noCache,
      expirationPeriodInMilliseconds: options.expirationPeriodInMilliseconds,
    });
    this.#keyPrefix = target.keyPrefix;
    this.#options = options;
    const prefix = target.keyPrefix;
    // The library names objects by upload id alone; this puts every key it sends under uploads/.
    this.client.middlewareStack.add(
      (next) => (args) => {
        const input = args.input as { Key?: unknown; Delete?: { Objects?: { Key?: string }[] } };
        const rewritten: Record<string, unknown> = { ...input };
        if (typeof input.Key === 'string') rewritten.Key = prefix + input.Key;
        if (input.Delete?.Objects)
          rewritten.Delete = {
            ...input.Delete,
            Objects: input.Delete.Objects.map((o) => ({ ...o, Key: prefix + o.Key })),
          };
        return next({ ...args, input: rewritten });
      },
      { step: 'initialize', name: 'goldmirrorUploadsPrefix' },
    );
  }

  /** A bucket that does not answer is a 503 in our words (clients retry), not tus' 500. */
  override async getUpload(id: string): Promise<Upload> {
    try {
      return await super.getUpload(id);
    } catch (err) {
      if (typeof err === 'object' && err !== null && 'status_code' in err) throw err;
      // eslint-disable-next-line @typescript-eslint/only-throw-error -- the shape @tus/server answers with
      throw tusAnswer(asAppError(err, 'looking up this upload'));
    }
  }

  /** The key of an upload's object, for adopting it once it is complete. */
  objectKey(id: string): string {
    return this.#keyPrefix + id;
  }

  override write(readable: Readable, id: string, offset: number): Promise<number> {
    return this.#writes.track(id, this.#receive(readable, id, offset));
  }

  settled(id: string): Promise<void> {
    return this.#writes.settled(id);
  }

  async #receive(readable: Readable, id: string, offset: number): Promise<number> {
    let file: Upload;
    try {
      ({ file } = await this.getMetadata(id));
    } catch (err) {
      // eslint-disable-next-line @typescript-eslint/only-throw-error -- the shape @tus/server answers with
      throw tusAnswer(asAppError(err, 'looking up this upload'));
    }
    // Before any byte: the part files this PATCH may keep in tmp/ must fit above the reserve.
    const partBytes = this.calcOptimalPartSize(file.size);
    const spool = Math.min(
      PARTS_ON_DISK * partBytes,
      file.size === undefined ? Number.POSITIVE_INFINITY : file.size - offset + this.minPartSize,
    );
    const headroom = this.#options.headroom;
    const room = await headroom();
    if (room < spool) {
      // eslint-disable-next-line @typescript-eslint/only-throw-error -- the shape @tus/server answers with
      throw tusAnswer(
        new AppError(
          'INSUFFICIENT_STORAGE',
          `not enough local disk space to buffer this upload on its way to the bucket (${spool} bytes needed, ${Math.max(0, room)} free above the reserve); resume it later`,
        ),
      );
    }
    const tracked = await this.#stateAt(id, offset);
    const fence = this.#options.fence;
    let received = 0;
    let nextLook = GUARD_EVERY_BYTES;
    const outOfRoom = (): AppError =>
      new AppError(
        'INSUFFICIENT_STORAGE',
        `the local disk ran short while this upload was buffered (at byte ${offset + received}); what reached the bucket is kept, resume it later`,
      );
    const receiving = new Transform({
      transform(chunk: Buffer, _encoding, callback) {
        // Another process may take over a lock this one could not renew in time: stop before it could.
        if (!fence(id))
          return callback(
            new AppError('UPLOAD_BUSY', 'this server could not keep the upload locked; resume it to continue'),
          );
        const pass = (): void => {
          received += chunk.length;
          if (tracked) {
            tracked.hash.update(chunk);
            tracked.offset += chunk.length;
          }
          callback(null, chunk);
        };
        if (received + chunk.length < nextLook) return pass();
        nextLook = received + chunk.length + GUARD_EVERY_BYTES;
        headroom().then(
          (left) => (left < 0 ? callback(outOfRoom()) : pass()),
          (err: Error) => callback(err),
        );
      },
    });
    // A request cut short keeps what arrived, as on disk: what was received is sent on, and the offset says so.
    readable.on('error', () => receiving.end());
    try {
      const newOffset = await super.write(readable.pipe(receiving), id, offset);
      // Bytes hashed that did not all land (or landed that were not hashed) make the state useless.
      if (tracked && tracked.offset !== newOffset) this.running.delete(id);
      return newOffset;
    } catch (err) {
      this.running.delete(id);
      // tus' own answers (and ours) as they are.
      if (typeof err === 'object' && err !== null && 'status_code' in err) throw err;
      // eslint-disable-next-line @typescript-eslint/only-throw-error -- the shape @tus/server answers with
      throw tusAnswer(asAppError(err, `receiving this upload (at byte ${offset + received})`));
    }
  }

  /**
   * The hash state to continue at `offset` with: a new one at 0; else this process's, if it ends
   * there and the bucket holds exactly the parts and tail it wrote (no other process wrote since).
   * Runs under the upload's lock: nobody writes meanwhile.
   */
  async #stateAt(id: string, offset: number): Promise<BucketHashState | undefined> {
    if (offset === 0) {
      const state: BucketHashState = { hash: newSha256(), offset: 0, parts: new Map(), tail: null };
      this.running.set(id, state);
      return state;
    }
    const state = this.running.get(id);
    this.running.delete(id);
    if (!state || state.offset !== offset) return undefined;
    try {
      const parts = await this.retrieveParts(id);
      if (parts.length !== state.parts.size) return undefined;
      for (const part of parts) {
        const mine = part.PartNumber === undefined ? undefined : state.parts.get(part.PartNumber);
        if (mine === undefined || mine !== bareTag(part.ETag)) return undefined;
      }
      if ((await this.#tailTag(id)) !== state.tail) return undefined;
    } catch {
      return undefined;
    }
    this.running.set(id, state);
    return state;
  }

  async #tailTag(id: string): Promise<string | null> {
    try {
      const head = await this.client.headObject({ Bucket: this.bucket, Key: this.partKey(id, true) });
      return bareTag(head.ETag);
    } catch (err) {
      if (isNotFound(err)) return null;
      throw err;
    }
  }

  protected override async uploadPart(
    metadata: MetadataValue,
    body: Readable | Buffer,
    partNumber: number,
  ): Promise<string> {
    const tag = await super.uploadPart(metadata, body, partNumber);
    this.running.get(metadata.file.id)?.parts.set(partNumber, bareTag(tag));
    return tag;
  }

  protected override async uploadIncompletePart(id: string, body: Readable): Promise<string> {
    const tag = await super.uploadIncompletePart(id, body);
    const state = this.running.get(id);
    if (state) state.tail = bareTag(tag);
    return tag;
  }

  protected override async deleteIncompletePart(id: string): Promise<void> {
    await super.deleteIncompletePart(id);
    const state = this.running.get(id);
    if (state) state.tail = null;
  }

  /**
   * The library's uploadParts, with its part files in tmp/ and the parts sent in order: each
   * waits for the one before it and is not sent when that one failed. Returns the bytes sent.
   */
  protected override async uploadParts(
    metadata: MetadataValue,
    readStream: Readable,
    currentPartNumber: number,
    offset: number,
  ): Promise<number> {
    const size = metadata.file.size;
    const sends: Promise<void>[] = [];
    let previous: Promise<void> = Promise.resolve();
    let pendingChunk: string | null = null;
    let bytesUploaded = 0;
    let permit: { release(): Promise<void> } | undefined;
    let nextPart = currentPartNumber;
    let end = offset;
    const splitter = new TmpFileSplitter(this.calcOptimalPartSize(size), this.#options.newTmpFile)
      // eslint-disable-next-line @typescript-eslint/no-misused-promises -- StreamSplitter awaits its listeners
      .on('beforeChunkStarted', async () => {
        permit = await this.partUploadSemaphore.acquire();
      })
      .on('chunkStarted', (file: string) => {
        pendingChunk = file;
      })
      .on('chunkFinished', ({ path: file, size: partSize }: { path: string; size: number }) => {
        pendingChunk = null;
        const held = permit;
        const partNumber = nextPart++;
        end += partSize;
        const isFinalPart = size === end;
        const after = previous;
        const send = (async () => {
          try {
            await after;
            const body = createReadStream(file);
            if (partSize >= this.minPartSize || isFinalPart) await this.uploadPart(metadata, body, partNumber);
            else await this.uploadIncompletePart(metadata.file.id, body);
            bytesUploaded += partSize;
          } catch (err) {
            splitter.destroy(err as Error);
            throw err;
          } finally {
            await fs.rm(file, { force: true }).catch(() => undefined);
            await held?.release().catch(() => undefined);
          }
        })();
        // Awaited below; until then a rejection counts as handled.
        send.catch(() => undefined);
        previous = send;
        sends.push(send);
      })
      .on('chunkError', () => {
        permit?.release().catch(() => undefined);
      });

    let received: { failed: unknown } | null = null;
    try {
      await pipeline(readStream, splitter);
    } catch (err) {
      received = { failed: err };
      if (pendingChunk !== null) await fs.rm(pendingChunk, { force: true }).catch(() => undefined);
    }
    // Nothing keeps running behind the answer; a part's failure is the cause of the stream's, so it wins.
    await Promise.allSettled(sends);
    await Promise.all(sends);
    if (received) throw received.failed;
    return bytesUploaded;
  }

  protected override uniqueTmpFileName(): Promise<string> {
    return Promise.resolve(this.#options.newTmpFile());
  }

  /** Aborts the multipart upload (a server without the call keeps its parts until its own clean-up) and deletes the objects. */
  override async remove(id: string): Promise<void> {
    let uploadId: string;
    try {
      uploadId = (await this.getMetadata(id))['upload-id'];
    } catch (err) {
      // eslint-disable-next-line @typescript-eslint/only-throw-error -- what tus' stores throw
      if (isNotFound(err)) throw ERRORS.FILE_NOT_FOUND;
      throw err;
    }
    try {
      await this.client.abortMultipartUpload({ Bucket: this.bucket, Key: id, UploadId: uploadId });
    } catch (err) {
      if (!isNotFound(err) && !isNotImplemented(err)) throw err;
    }
    await this.dropObjects(id);
    this.running.delete(id);
  }

  /** Deletes the upload's object, tail and metadata (the metadata last: while it is there, the upload can be found again). */
  async dropObjects(id: string): Promise<void> {
    for (const key of [id, this.partKey(id, true), this.infoKey(id)]) {
      try {
        await this.client.deleteObject({ Bucket: this.bucket, Key: key });
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
    }
  }

  async dropFinished(id: string): Promise<void> {
    this.running.delete(id);
    await this.dropObjects(id);
  }

  async listIds(): Promise<string[]> {
    const ids: string[] = [];
    let token: string | undefined;
    do {
      const page = await this.client.listObjectsV2({
        Bucket: this.bucket,
        Prefix: this.#keyPrefix,
        ContinuationToken: token,
      });
      for (const item of page.Contents ?? []) {
        const match = /^([0-9a-f]{32})\.info$/.exec(item.Key?.slice(this.#keyPrefix.length) ?? '');
        if (match?.[1]) ids.push(match[1]);
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    return ids;
  }

  /** When the last part or tail arrived; the complete object's time once it is complete. */
  async lastDataAt(id: string, upload: Upload): Promise<number | null> {
    if (upload.offset === 0) return null;
    let latest = 0;
    try {
      for (const part of await this.retrieveParts(id)) latest = Math.max(latest, part.LastModified?.getTime() ?? 0);
    } catch (err) {
      if (!isNotFound(err)) throw err;
      const head = await this.client.headObject({ Bucket: this.bucket, Key: id });
      return head.LastModified?.getTime() ?? null;
    }
    try {
      const tail = await this.client.headObject({ Bucket: this.bucket, Key: this.partKey(id, true) });
      latest = Math.max(latest, tail.LastModified?.getTime() ?? 0);
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
    return latest === 0 ? null : latest;
  }

  /** The digest of a complete upload of `size` bytes when this process received all of them, else undefined. */
  takeDigest(id: string, size: number): Promise<Sha256 | undefined> {
    const state = this.running.get(id);
    this.running.delete(id);
    return Promise.resolve(state?.offset === size ? (state.hash.digest('hex') as Sha256) : undefined);
  }

  forget(id: string): void {
    this.running.delete(id);
  }

  forgetAllBut(ids: readonly string[]): void {
    for (const id of this.running.keys()) if (!ids.includes(id)) this.running.delete(id);
  }

  /**
   * Removes unfinished uploads created longer ago than the expiry, as the file store does; then
   * aborts multipart uploads under uploads/ that have no metadata (their creation died half-way).
   */
  override async deleteExpired(): Promise<number> {
    const expiry = this.getExpiration();
    if (expiry === 0) return 0;
    const ids = await this.listIds();
    let removed = 0;
    for (const id of ids) {
      let upload: Upload;
      try {
        upload = await this.getUpload(id);
      } catch (err) {
        if (err === ERRORS.FILE_NOT_FOUND) continue; // removed meanwhile
        throw err;
      }
      if (upload.offset === upload.size || !upload.creation_date) continue;
      if (Date.now() <= Date.parse(upload.creation_date) + expiry) continue;
      await this.remove(id);
      removed += 1;
    }
    const known = new Set(ids);
    try {
      let keyMarker: string | undefined;
      let uploadIdMarker: string | undefined;
      do {
        const page = await this.client.listMultipartUploads({
          Bucket: this.bucket,
          Prefix: this.#keyPrefix,
          KeyMarker: keyMarker,
          UploadIdMarker: uploadIdMarker,
        });
        for (const open of page.Uploads ?? []) {
          const id = open.Key?.slice(this.#keyPrefix.length) ?? '';
          if (!/^[0-9a-f]{32}$/.test(id) || known.has(id)) continue;
          if (Date.now() <= (open.Initiated?.getTime() ?? Date.now()) + expiry) continue;
          await this.client.abortMultipartUpload({ Bucket: this.bucket, Key: id, UploadId: open.UploadId });
          removed += 1;
        }
        keyMarker = page.IsTruncated ? page.NextKeyMarker : undefined;
        uploadIdMarker = page.IsTruncated ? page.NextUploadIdMarker : undefined;
      } while (keyMarker);
    } catch (err) {
      if (!isNotImplemented(err)) throw err;
    }
    return removed;
  }
}

/** What a failed call answers: ours as they are; a full local disk 507; the bucket failing 503 (clients retry). */
function asAppError(err: unknown, doing: string): AppError {
  if (isError(err)) return err;
  const code = (err as NodeJS.ErrnoException | null)?.code;
  if (code === 'ENOSPC' || code === 'EDQUOT')
    return new AppError(
      'INSUFFICIENT_STORAGE',
      `the local disk filled up while ${doing}; what reached the bucket is kept, resume it later`,
    );
  // The SDK's errors carry the answer's metadata.
  if (typeof err === 'object' && err !== null && '$metadata' in err)
    return new AppError(
      'STORAGE_UNAVAILABLE',
      `object storage: ${doing} failed: ${err instanceof Error ? err.message : 'no message'}`,
      {},
      { cause: err },
    );
  return toAppError(err);
}
