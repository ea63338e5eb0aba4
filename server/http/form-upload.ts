/**
 * The no-JavaScript upload: one streamed multipart/form-data request with an
 * optional `checksum` file part and a `package` file part, in either order.
 *
 * Verification, whatever the order of the parts (the page sends the CSRF
 * field, then the package, then the checksum file and the architecture):
 * 1. the ingest is held open until the whole form has been read, so every
 *    field that came after the package is known before anything is committed;
 * 2. checksum part first: its digest is handed to the ingest, which compares;
 * 3. package part first: the package is hashed while it streams to its temp
 *    file, and a checksum part that arrived after it is compared at the end;
 * 4. a mismatch, or a bad architecture field after the package, fails the
 *    ingest, which removes the temp file: nothing is stored;
 * 5. the answer says whether a digest was compared, so the page never claims a
 *    verification that did not happen.
 */
import { newSha256, parseChecksumText, type Sha256 } from '../../storage/digest.js';
import type { BlobArch } from '../db/schema.js';
import { AppError, toAppError } from '../errors.js';
import { streamedFormCsrf } from './auth.js';
import {
  completeForm,
  feedFormParser,
  fileAllowed,
  malformedForm,
  multipartParser,
  streamedFormBody,
} from './streamed-form.js';
import { assertPackageFileName, parseBlobArch, recordUploadArch } from '../services/blobs.js';
import { assertFreeSpace, ingest, type IngestDeps } from '../services/ingest.js';

/** A checksum file is one line; more is not a checksum file. */
const CHECKSUM_MAX_CHARS = 65536;

export interface FormUploadResult {
  sha256: string;
  /** True when a checksum file was given and the package matched it. */
  checksumCompared: boolean;
}

/**
 * `expectedCsrf` is the session's token, checked against the form's first field
 * before any file part is read; null for a request with an API token (which needs none).
 */
export async function receiveFormUpload(
  deps: IngestDeps,
  request: Request,
  expectedCsrf: string | null,
): Promise<FormUploadResult> {
  const body = streamedFormBody(request, 'upload');
  // The form is a little larger than the package: a known length is checked before a byte is stored.
  const declared = Number(request.headers.get('content-length') ?? NaN);
  if (Number.isSafeInteger(declared) && declared > 0) await assertFreeSpace(deps, declared, 'this upload');

  return new Promise<FormUploadResult>((resolve, reject) => {
    // A throw here (not multipart) rejects the promise.
    const parser = multipartParser(request, 'upload', { files: 2, fields: 5, fieldSize: 4096 });
    let checksumText = '';
    let arch: BlobArch | undefined;
    let archError: AppError | undefined;
    const csrf = streamedFormCsrf(expectedCsrf);
    parser.on('field', (name, value) => {
      csrf.field(name, value);
      if (name !== 'arch') return;
      try {
        arch = parseBlobArch(value, 'the architecture');
      } catch (err) {
        archError = toAppError(err);
      }
    });
    let packageStarted = false;
    // busboy emits the package's 'file' event before an earlier checksum stream's 'data' has run: wait for its end.
    let checksumRead: Promise<void> = Promise.resolve();
    let job: Promise<FormUploadResult> | null = null;
    // A client that goes away mid-upload must end the ingest (and free its temp file) at once.
    const aborted = new AbortController();
    const formRead = new Promise<void>((done, fail) => {
      parser.on('close', () => done());
      aborted.signal.addEventListener('abort', () => fail(aborted.signal.reason as Error), { once: true });
    });
    formRead.catch(() => undefined);

    parser.on('file', (name, stream, info) => {
      if (!fileAllowed(csrf, stream, reject)) return;
      if (name === 'checksum') {
        const read = new Promise<void>((done) => stream.on('end', done).on('error', () => done()));
        if (!packageStarted) checksumRead = read;
        stream.on('data', (chunk: Buffer) => {
          if (checksumText.length < CHECKSUM_MAX_CHARS) checksumText += chunk.toString('utf8');
        });
        return;
      }
      if (name !== 'package' || !info.filename || job) {
        stream.resume();
        return;
      }
      packageStarted = true;
      const fileName = info.filename;
      job = checksumRead.then(async () => {
        if (archError) throw archError;
        assertPackageFileName(fileName);
        const given = checksumText.trim() ? parseChecksumText(checksumText, 'the checksum file') : undefined;
        let late: Sha256 | undefined;
        const source = untilFormRead(stream, formRead, given === undefined, (actual) => {
          if (archError) throw archError;
          if (given || actual === null) return;
          late = checksumText.trim() ? parseChecksumText(checksumText, 'the checksum file') : undefined;
          if (late && late !== actual) {
            throw new AppError(
              'DIGEST_MISMATCH',
              `the package hashes to sha256 ${actual}, but the checksum file (sent after the package) says ${late}; nothing was stored`,
              { expected: late, actual },
            );
          }
        });
        const { blob } = await ingest(deps, { source, fileName, expectedSha256: given, arch, signal: aborted.signal });
        return { sha256: blob.sha256, checksumCompared: given !== undefined || late !== undefined };
      });
      job.catch(() => stream.resume());
    });
    parser.on('error', (err: Error) => {
      const bad = malformedForm('upload', err);
      aborted.abort(bad);
      reject(bad);
    });
    parser.on('close', () => {
      // The architecture field may also come after the package part: recorded once both are in.
      completeForm(csrf, job, 'package', 'pick a .pvmp package to upload')
        .then((result) => recordUploadArch(deps, result.sha256, arch, archError).then(() => result))
        .then(resolve, reject);
    });
    feedFormParser(body, parser, aborted, reject);
  });
}

/**
 * The package bytes on their way to the store (hashed when no checksum came
 * before them); after the last one it waits for the rest of the form and lets
 * `verify` throw before the ingest commits, so a late mismatch or a bad late
 * field leaves nothing behind.
 */
async function* untilFormRead(
  stream: AsyncIterable<Buffer>,
  formRead: Promise<void>,
  hash: boolean,
  verify: (actual: Sha256 | null) => void,
): AsyncGenerator<Buffer> {
  const digest = hash ? newSha256() : null;
  for await (const chunk of stream) {
    digest?.update(chunk);
    yield chunk;
  }
  await formRead;
  verify(digest ? (digest.digest('hex') as Sha256) : null);
}
