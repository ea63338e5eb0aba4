/**
 * The no-JavaScript "Add a .dmg" form of the Parallels Desktop updates page: one streamed multipart/form-data
 * request whose text fields (version, code name, ancestors, publish) come before the `file` part, as the page
 * lays them out. The file streams into addUpdateFile (which checks the disk-image trailer) and is never buffered.
 *
 * Nothing is stored when anything is wrong: a bad version is refused before a byte is read; a field that
 * arrives after the file, a missing CSRF field or a cut connection fails the ingest before it commits.
 */
import { AppError } from '../errors.js';
import type { Actor } from '../services/audit.js';
import { assertFreeSpace, type IngestDeps } from '../services/ingest.js';
import { versionProblem } from '../services/pd-updates/feed.js';
import { addUpdateFile, type UpdateView } from '../services/pd-updates/versions.js';
import type { SettingsDeps } from '../services/settings.js';
import { streamedFormCsrf } from './auth.js';
import {
  completeForm,
  feedFormParser,
  fileAllowed,
  malformedForm,
  multipartParser,
  streamedFormBody,
} from './streamed-form.js';

/** The text fields as sent, so a refused form can be shown again with them. */
export interface UpdateFormValues {
  version: string;
  codename: string;
  /** As typed: one uuid a line (commas and spaces separate too). */
  ancestors: string;
  publish: boolean;
}

export const EMPTY_UPDATE_FORM: Readonly<UpdateFormValues> = Object.freeze({
  version: '',
  codename: '',
  ancestors: '',
  publish: false,
});

const TEXT_FIELDS = new Set(['version', 'codename', 'ancestors', 'publish']);

const refusedField = (field: string, message: string, summary = message): AppError =>
  new AppError('VALIDATION_FAILED', summary, { fields: [{ field, message }] });

/**
 * Reads the form into `values` (filled in as the fields arrive, so the caller has them when this throws) and
 * stores its file. `expectedCsrf` is the session's token, checked before the file part is read; null for an
 * API token.
 */
export async function receiveUpdateForm(
  deps: IngestDeps & SettingsDeps,
  actor: Actor,
  request: Request,
  expectedCsrf: string | null,
  values: UpdateFormValues,
): Promise<UpdateView> {
  const body = streamedFormBody(request, 'update file');
  // The form is a little larger than the file: a known length is checked before a byte is stored.
  const declared = Number(request.headers.get('content-length') ?? NaN);
  if (Number.isSafeInteger(declared) && declared > 0) await assertFreeSpace(deps, declared, 'this .dmg');

  return new Promise<UpdateView>((resolve, reject) => {
    // A throw here (not multipart) rejects the promise.
    const parser = multipartParser(request, 'update file', { files: 1, fields: 8, fieldSize: 64 * 1024 });
    const csrf = streamedFormCsrf(expectedCsrf);
    let job: Promise<UpdateView> | null = null;
    let lateField: string | null = null;
    // A client that goes away mid-upload must end the ingest (and free its temp file) at once.
    const aborted = new AbortController();
    const formRead = new Promise<void>((done, fail) => {
      parser.on('close', () => done());
      aborted.signal.addEventListener('abort', () => fail(aborted.signal.reason as Error), { once: true });
    });
    formRead.catch(() => undefined);

    parser.on('field', (name, value) => {
      csrf.field(name, value);
      if (!TEXT_FIELDS.has(name)) return;
      if (job) lateField ??= name;
      if (name === 'publish') values.publish = value === 'on';
      else values[name as 'version' | 'codename' | 'ancestors'] = value;
    });
    parser.on('file', (name, stream, info) => {
      if (!fileAllowed(csrf, stream, reject)) return;
      // A browser sends an empty part when no file was chosen.
      if (name !== 'file' || !info.filename || job) {
        stream.resume();
        return;
      }
      const fileName = info.filename;
      job = (async () => {
        const version = values.version.trim();
        if (version === '') throw refusedField('version', 'enter the version, like 26.3.3-57507', 'Enter the version.');
        const problem = versionProblem(version);
        if (problem) throw refusedField('version', problem);
        return addUpdateFile(deps, actor, {
          source: untilFormRead(stream, formRead, () => lateField),
          what: fileName,
          version,
          codename: values.codename,
          ancestors: values.ancestors.split(/[\s,]+/).filter((a) => a !== ''),
          publish: values.publish,
          signal: aborted.signal,
        });
      })();
      // Refused before its first byte was read: drain the rest so the form can end.
      job.catch(() => stream.resume());
    });
    parser.on('error', (err: Error) => {
      const bad = malformedForm('update file', err);
      aborted.abort(bad);
      reject(bad);
    });
    parser.on('close', () => {
      completeForm(csrf, job, 'file', 'pick the .dmg to add').then(resolve, (err: unknown) =>
        reject(fieldOf(err as Error)),
      );
    });
    feedFormParser(body, parser, aborted, reject);
  });
}

/** The file's bytes; after the last one it waits for the rest of the form and fails when a field came late. */
async function* untilFormRead(
  stream: AsyncIterable<Buffer>,
  formRead: Promise<void>,
  lateField: () => string | null,
): AsyncGenerator<Buffer> {
  for await (const chunk of stream) yield chunk;
  await formRead;
  const late = lateField();
  if (late)
    throw new AppError(
      'VALIDATION_FAILED',
      `the form sent the field ${JSON.stringify(late)} after the file; send every field before the file. Nothing was stored`,
    );
}

/**
 * The service's refusals of one field, tied to that field for the page (its messages name the field first);
 * anything else as it is.
 */
function fieldOf(err: Error): Error {
  if (!(err instanceof AppError) || err.code !== 'VALIDATION_FAILED' || err.details.fields) return err;
  const field = /^ancestor /.test(err.message)
    ? 'ancestors'
    : /^the code name /.test(err.message)
      ? 'codename'
      : /^--version /.test(err.message)
        ? 'version'
        : null;
  return field ? new AppError(err.code, err.message, { fields: [{ field, message: err.message }] }) : err;
}
