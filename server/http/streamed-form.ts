/**
 * What the two streamed multipart forms (the package upload and the groups CSV
 * import) share: opening the parser, and the checks at either end of the form.
 * `what` names the form in every message ("upload", "import").
 */
import { Readable, type Writable } from 'node:stream';
import busboy from 'busboy';
import { AppError } from '../errors.js';
import type { streamedFormCsrf } from './auth.js';

type FormCsrf = ReturnType<typeof streamedFormCsrf>;

/** The request's body; a form without one is refused before anything else is checked. */
export function streamedFormBody(request: Request, what: string): ReadableStream<Uint8Array> {
  if (!request.body) throw new AppError('BAD_REQUEST', `the ${what} form arrived empty`);
  return request.body;
}

/** A parser for the request's body; a body that is not multipart/form-data is refused. */
export function multipartParser(request: Request, what: string, limits: busboy.Limits): busboy.Busboy {
  try {
    return busboy({ headers: Object.fromEntries(request.headers), limits });
  } catch {
    throw new AppError('BAD_REQUEST', `the ${what} must be sent as multipart/form-data`);
  }
}

export function malformedForm(what: string, err: Error): AppError {
  return new AppError('BAD_REQUEST', `the ${what} form is malformed: ${err.message}`);
}

/** A file part that came before a valid CSRF field is drained unread and refuses the form; true when it may be read. */
export function fileAllowed(csrf: FormCsrf, stream: Readable, reject: (err: AppError) => void): boolean {
  if (csrf.ok()) return true;
  stream.resume();
  reject(csrf.refusal());
  return false;
}

/** Once the whole form is read: the CSRF field, then the one file part the form needs (`field`), else refused. */
export async function completeForm<T>(
  csrf: FormCsrf,
  filePart: Promise<T> | null,
  field: string,
  message: string,
): Promise<T> {
  if (!csrf.ok()) throw csrf.refusal();
  if (!filePart) throw new AppError('VALIDATION_FAILED', message, { fields: [{ field, message: 'required' }] });
  return filePart;
}

/**
 * Pipes the request body into the form parser. A body that breaks off (the client went away) stops the parser
 * and, through `aborted`, the ingest waiting on its file part: pipe() alone would not pass the error on.
 */
export function feedFormParser(
  body: ReadableStream<Uint8Array>,
  parser: Writable,
  aborted: AbortController,
  reject: (err: AppError) => void,
): void {
  const source = Readable.fromWeb(body);
  source.on('error', (err) => {
    const cut = new AppError('BAD_REQUEST', 'the upload was interrupted; nothing was stored', {}, { cause: err });
    aborted.abort(cut);
    parser.destroy(cut);
    reject(cut);
  });
  source.pipe(parser);
}
