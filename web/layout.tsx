/** The admin console's page frame: head, navigation, flash messages, and small shared components. */
import type { Child, FC } from 'hono/jsx';
import { humanBytes } from '../server/cli/output.js';
import { STYLES } from './styles.js';

export interface PageProps {
  title: string;
  /** Signed-in user; null on the sign-in page. */
  user: string | null;
  csrf: string | null;
  active?: string;
  flash?: string | undefined;
  error?: string | undefined;
  scripts?: string[];
  children?: Child;
}

const NAV: Array<[string, string]> = [
  ['/admin', 'Dashboard'],
  ['/admin/images', 'Golden images'],
  ['/admin/groups', 'Groups'],
  ['/admin/blobs', 'Packages'],
  ['/admin/upload', 'Upload'],
  ['/admin/downloads', 'Downloads'],
  ['/admin/history', 'History'],
];

export const Layout: FC<PageProps> = (props) => (
  <html lang="en">
    <head>
      <meta charset="utf-8" />
      <meta name="viewport" content="width=device-width, initial-scale=1" />
      <title>{props.title} · goldmirror</title>
      <style>{STYLES}</style>
    </head>
    <body>
      <header class="top">
        <a class="brand" href="/admin">
          goldmirror
        </a>
        {props.user !== null && (
          <nav aria-label="Main">
            <ul>
              {NAV.map(([href, label]) => (
                <li>
                  <a href={href} aria-current={props.active === href ? 'page' : undefined}>
                    {label}
                  </a>
                </li>
              ))}
            </ul>
          </nav>
        )}
        {props.user !== null && (
          <div class="account">
            <a href="/admin/account">{props.user}</a>
            <form method="post" action="/admin/logout">
              <CsrfField token={props.csrf} />
              <button type="submit" class="link">
                Sign out
              </button>
            </form>
          </div>
        )}
      </header>
      <main>
        <h1>{props.title}</h1>
        {props.flash && (
          <p class="flash ok" role="status">
            {props.flash}
          </p>
        )}
        {props.error && (
          <p class="flash bad" role="alert">
            {props.error}
          </p>
        )}
        {props.children}
      </main>
      {(props.scripts ?? []).map((src) => (
        <script src={src} defer></script>
      ))}
    </body>
  </html>
);

export const CsrfField: FC<{ token: string | null }> = ({ token }) =>
  token ? <input type="hidden" name="_csrf" value={token} /> : null;

/** A read-only value with a copy button (the button needs JS; the field is selectable without it). */
export const CopyField: FC<{ id: string; label: string; value: string }> = ({ id, label, value }) => (
  <div class="copy">
    <label for={id}>{label}</label>
    <div class="copy-row">
      <input id={id} type="text" readonly value={value} class="mono" />
      <button type="button" class="copy-button" data-copy={id} aria-label={`Copy ${label}`}>
        Copy
      </button>
    </div>
  </div>
);

export const StateBadge: FC<{ state: string | null }> = ({ state }) => (
  <span class={`badge ${state === 'ok' ? 'ok' : 'bad'}`}>{state === 'ok' ? 'verified' : (state ?? 'not stored')}</span>
);

/** Field-level error next to an input, linked with aria-describedby. */
export const FieldError: FC<{ id: string; message: string | undefined }> = ({ id, message }) =>
  message ? (
    <p class="field-error" id={`${id}-error`}>
      {message}
    </p>
  ) : null;

/** Bytes for people (powers of ten, like Finder); the same wording as the CLI. */
export function formatBytes(bytes: number | null): string {
  return bytes === null ? '–' : humanBytes(bytes);
}

export function formatDate(iso: string | null): string {
  return iso ? iso.slice(0, 16).replace('T', ' ') + ' UTC' : 'never';
}
