/** The admin console's page frame: head, navigation, flash messages, and small shared components. */
import { createHash } from 'node:crypto';
import { raw } from 'hono/html';
import type { Child, FC } from 'hono/jsx';
import { useRequestContext } from 'hono/jsx-renderer';
import { humanBytes } from '../server/format.js';
import type { PublicAddress } from '../server/services/settings.js';
import { csrfOf, type WebEnv } from './env.js';
import { STYLES } from './styles.js';

/**
 * The CSP source that allows exactly the one inline stylesheet below. A hash
 * instead of 'unsafe-inline' (which would also allow injected style
 * attributes) or a separate file (which the sign-in page, shown before any
 * session exists, would need as a public route). Pages carry no `style=`.
 */
export const STYLE_SOURCE = `'sha256-${createHash('sha256').update(STYLES).digest('base64')}'`;

export interface FrameProps {
  title: string;
  /** Signed-in user; null on the sign-in page. */
  user: string | null;
  /** The public address in force, so the frame can ask for it, or warn about it, on each signed-in page. */
  address?: PublicAddress | undefined;
  active?: string | undefined;
  flash?: string | undefined;
  error?: string | undefined;
  scripts?: string[] | undefined;
  children?: Child;
}

const NAV: Array<[string, string]> = [
  ['/admin', 'Dashboard'],
  ['/admin/images', 'Golden images'],
  ['/admin/groups', 'Groups'],
  ['/admin/blobs', 'Packages'],
  ['/admin/upload', 'Upload'],
  ['/admin/sites', 'Sites'],
  ['/admin/updates', 'Updates'],
  ['/admin/downloads', 'Downloads'],
  ['/admin/history', 'History'],
  ['/admin/settings', 'Settings'],
];

/** The whole document around a page; filled in by the renderer in render.tsx, never called by a page. */
export const Frame: FC<FrameProps> = (props) => (
  <html lang="en">
    <head>
      <meta charset="utf-8" />
      <meta name="viewport" content="width=device-width, initial-scale=1" />
      <title>{props.title} · goldmirror</title>
      {/* raw: escaping would turn `>` selectors into `&gt;` and change the hashed text. */}
      <style>{raw(STYLES)}</style>
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
              <CsrfField />
              <button type="submit" class="link">
                Sign out
              </button>
            </form>
          </div>
        )}
      </header>
      <main>
        {props.user !== null && props.address && <AddressBanner address={props.address} />}
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
      {props.user !== null && (
        <footer>
          <p class="muted">
            JSON API: <a href="/api/v1/reference">reference</a> · <a href="/api/v1/openapi.json">OpenAPI document</a>
          </p>
        </footer>
      )}
      {(props.scripts ?? []).map((src) => (
        <script src={src} defer></script>
      ))}
    </body>
  </html>
);

/** Until a public address is set no link is offered; a loopback or localhost one is never shown without this red warning. */
const AddressBanner: FC<{ address: PublicAddress }> = ({ address }) => {
  if (address.url === null) {
    return (
      <aside class="banner bad" id="address-banner" aria-label="Public address">
        <strong>Set the public address first.</strong> Macs download packages from links that start with the address
        they use to reach this mirror; until it is set, no Download URL is offered.{' '}
        <a href="/admin/settings">Set the public address</a>
      </aside>
    );
  }
  if (address.warnings.length === 0) return null;
  return (
    <aside class="banner bad" id="address-banner" aria-label="Public address">
      {address.warnings.map((w) => (
        <p>{w}</p>
      ))}
      <a href="/admin/settings">Change the public address</a>
    </aside>
  );
};

/** The session's CSRF token for attributes (data-csrf); '' for API tokens. Only inside a page given to c.render(). */
export function useCsrfToken(): string {
  return csrfOf(useRequestContext<WebEnv>()) ?? '';
}

/** The hidden _csrf field every signed-in form carries (nothing for API tokens, which need none). */
export const CsrfField: FC = () => {
  const token = useCsrfToken();
  return token ? <input type="hidden" name="_csrf" value={token} /> : null;
};

/**
 * A value with a copy button, shown whole: long URLs wrap instead of being cut
 * off in a field (the button needs JS; without it the text is selectable).
 */
export const CopyField: FC<{ id: string; label: string; value: string }> = ({ id, label, value }) => (
  <div class="copy">
    <div class="copy-label" id={`${id}-label`}>
      {label}
    </div>
    <div class="copy-row">
      <code id={id} class="copy-value" aria-labelledby={`${id}-label`}>
        {/* Each path segment moves to the next line as a whole (a file name stays in one piece where it fits). */}
        {value.split(/(?<=[^/]\/)(?!\/)/).map((part, i) => (i === 0 ? part : <span class="seg">{part}</span>))}
      </code>
      <button type="button" class="copy-button" data-copy={id} aria-label={`Copy ${label}`}>
        Copy
      </button>
    </div>
  </div>
);

/** Where a value cannot be offered yet: the field's label and why, instead of a copyable guess. */
export const NotReadyField: FC<{ id: string; label: string; reason: Child }> = ({ id, label, reason }) => (
  <div class="copy">
    <div class="copy-label">{label}</div>
    <p class="not-ready" id={id}>
      <span class="badge bad">not ready</span> {reason}
    </p>
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
