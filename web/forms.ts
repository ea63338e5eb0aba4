/**
 * Reading the admin forms: text fields, the values a form is re-shown with,
 * the service input built from them, errors mapped onto fields, the body
 * limit, and the streamed CSV import form. Every form works without JavaScript.
 */
import { Readable } from 'node:stream';
import type { Context } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { AppError, toAppError } from '../server/errors.js';
import { streamedFormCsrf } from '../server/http/auth.js';
import {
  completeForm,
  fileAllowed,
  malformedForm,
  multipartParser,
  streamedFormBody,
} from '../server/http/streamed-form.js';
import { readGroupsCsv, type GroupCsvFile } from '../server/services/groups-csv.js';
import { ARCHES, type ImageView } from '../server/services/images.js';
import type { GroupView } from '../server/services/groups.js';
import type { GroupFormValues } from './pages/groups.js';
import type { SiteFormValues } from './pages/sites.js';
import type { SiteView } from '../server/services/sites.js';
import type { ImageFormValues } from './pages/image-form.js';

export type ParsedForm = Record<string, unknown>;

/** A text field of a parsed form ('' when absent or a file). */
export function field(form: ParsedForm, name: string): string {
  const value = form[name];
  return typeof value === 'string' ? value : '';
}

/** A refused form: the message above it, one message per field, and the status to answer with. */
export interface FormError {
  message: string;
  fields: Record<string, string>;
  status: 400 | 404 | 409 | 422;
}

/** A known error as shown on the form; anything else is rethrown for the error page. */
export function formError(err: unknown): FormError {
  const e = toAppError(err);
  if (e.code === 'INTERNAL') throw err;
  const fields: Record<string, string> = {};
  const list = e.details.fields;
  if (Array.isArray(list)) {
    for (const f of list as Array<{ field: string; message: string }>) fields[f.field] ??= f.message;
  }
  const status = ([400, 404, 409, 422].includes(e.status) ? e.status : 400) as FormError['status'];
  return { message: e.message, fields, status };
}

/** Forms are small: a larger body is refused before it is read. */
export function formLimit(maxSize: number) {
  return bodyLimit({
    maxSize,
    onError: () => {
      throw new AppError('PAYLOAD_TOO_LARGE', `this form accepts at most ${maxSize / 1024} KiB`);
    },
  });
}

/** Where sign-in leads: a page of the console, nothing else. */
export function safeNext(next: string | undefined): string {
  return next && /^\/admin(\/[A-Za-z0-9/_-]*)?$/.test(next) && !next.includes('//') ? next : '/admin';
}

/** Where a confirmation leads back to: the image page or the group's own page, nothing else. */
export function safeBack(back: string | undefined, groupId: number): string {
  return back && /^\/admin\/(images|groups)\/\d+$/.test(back) ? back : `/admin/groups/${groupId}`;
}

export function emptyImageValues(): ImageFormValues {
  return { name: '', description: '', arm64: { enabled: false, sha256: '' }, x86_64: { enabled: false, sha256: '' } };
}

/** The new-image form opened from "Create a golden image with this package" (?arm64=<sha256> or ?x86_64=<sha256>). */
export function prefilledImageValues(c: Context): ImageFormValues {
  const values = emptyImageValues();
  for (const arch of ARCHES) {
    const sha256 = c.req.query(arch)?.toLowerCase();
    if (sha256 && /^[0-9a-f]{64}$/.test(sha256)) values[arch] = { enabled: true, sha256 };
  }
  return values;
}

export function imageViewValues(image: ImageView): ImageFormValues {
  return {
    name: image.name,
    description: image.description,
    arm64: { enabled: image.arm64.enabled, sha256: image.arm64.sha256 ?? '' },
    x86_64: { enabled: image.x86_64.enabled, sha256: image.x86_64.sha256 ?? '' },
  };
}

export function imageValues(form: ParsedForm): ImageFormValues {
  return {
    name: field(form, 'name'),
    description: field(form, 'description'),
    arm64: { enabled: form['arm64.enabled'] === 'on', sha256: field(form, 'arm64.sha256') },
    x86_64: { enabled: form['x86_64.enabled'] === 'on', sha256: field(form, 'x86_64.sha256') },
  };
}

export function imageInput(v: ImageFormValues): Record<string, unknown> {
  return {
    name: v.name,
    description: v.description,
    arm64: { enabled: v.arm64.enabled, sha256: v.arm64.sha256 || null },
    x86_64: { enabled: v.x86_64.enabled, sha256: v.x86_64.sha256 || null },
  };
}

export const EMPTY_GROUP_VALUES: Readonly<GroupFormValues> = Object.freeze({
  name: '',
  licenseKey: '',
  primary: false,
  imageId: '',
});

export function groupViewValues(group: GroupView): GroupFormValues {
  return {
    name: group.name,
    licenseKey: group.licenseKey ?? '',
    primary: group.primary,
    imageId: group.imageId === null ? '' : String(group.imageId),
  };
}

export function groupValues(form: ParsedForm): GroupFormValues {
  return {
    name: field(form, 'name'),
    licenseKey: field(form, 'licenseKey'),
    primary: form.primary === 'on',
    imageId: field(form, 'imageId'),
  };
}

export function groupInput(v: GroupFormValues): Record<string, unknown> {
  return {
    name: v.name,
    licenseKey: v.licenseKey.trim() === '' ? null : v.licenseKey,
    primary: v.primary,
    imageId: v.imageId === '' ? null : Number(v.imageId),
  };
}

export const EMPTY_SITE_VALUES: Readonly<SiteFormValues> = Object.freeze({ name: '', networks: '', redirects: true });

export function siteViewValues(site: SiteView): SiteFormValues {
  return { name: site.name, networks: site.networks.join('\n'), redirects: site.redirects };
}

export function siteValues(form: ParsedForm): SiteFormValues {
  return { name: field(form, 'name'), networks: field(form, 'networks'), redirects: form.redirects === 'on' };
}

/** Networks as typed: one a line, and commas or spaces separate too. */
export function siteNetworksInput(v: SiteFormValues): string[] {
  return v.networks.split(/[\s,]+/).filter((n) => n !== '');
}

/**
 * A refused site form: every problem with the networks under that field (a
 * list can hold several bad entries), and a taken name or network beside
 * the field it concerns.
 */
export function siteFormError(err: unknown): FormError {
  const e = formError(err);
  const code = toAppError(err).code;
  const list = (toAppError(err).details.fields ?? []) as Array<{ field: string; message: string }>;
  const networks = list.filter((f) => f.field === 'networks' || f.field.startsWith('networks.'));
  if (networks.length > 0) {
    e.fields.networks = networks
      .map((f) => (f.field === 'networks' ? f.message : `entry ${Number(f.field.split('.')[1]) + 1}: ${f.message}`))
      .join('; ');
  }
  if (code === 'NAME_TAKEN') e.fields.name = e.message;
  if (code === 'NETWORK_TAKEN') e.fields.networks = e.message;
  return e;
}

/** The CSV import form: the file is streamed into the reader (capped there), never buffered whole. */
export async function receiveGroupsCsv(
  c: Context,
  expectedCsrf: string | null,
): Promise<{ file: GroupCsvFile; dryRun: boolean }> {
  const body = streamedFormBody(c.req.raw, 'import');
  return new Promise((resolve, reject) => {
    // A throw here (not multipart) rejects the promise.
    const parser = multipartParser(c.req.raw, 'import', { files: 1, fields: 5, fieldSize: 1024 });
    let dryRun = false;
    let rows: Promise<GroupCsvFile> | null = null;
    const csrf = streamedFormCsrf(expectedCsrf);
    parser.on('field', (name, value) => {
      csrf.field(name, value);
      if (name === 'dryRun') dryRun = value === 'on';
    });
    parser.on('file', (name, stream) => {
      if (!fileAllowed(csrf, stream, reject)) return;
      if (name !== 'file' || rows) return void stream.resume();
      rows = readGroupsCsv(stream);
      // A reader that stopped early (a bad line) must not stall the form: drain the rest.
      rows.catch(() => stream.resume());
    });
    parser.on('error', (err: Error) => reject(malformedForm('import', err)));
    parser.on('close', () => {
      completeForm(csrf, rows, 'file', 'pick a CSV file to import').then((file) => resolve({ file, dryRun }), reject);
    });
    Readable.fromWeb(body)
      .on('error', (err) => parser.destroy(err))
      .pipe(parser);
  });
}
