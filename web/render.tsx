/**
 * The page renderer: every admin page is given to `c.render(page, meta)` and
 * framed here with what all pages share (the signed-in user, the CSRF token,
 * the flash message of ?done=, the public-address banner), read from the
 * request context instead of passed along by each route.
 */
import type { Context } from 'hono';
import { jsxRenderer } from 'hono/jsx-renderer';
import type { PublicAddress } from '../server/services/settings.js';
import { userOf, type WebContext } from './env.js';
import { Frame } from './layout.js';

/** What a route tells the frame about its page. */
export interface PageMeta {
  title: string;
  /** The navigation entry to mark as current. */
  active?: string;
  scripts?: string[];
  /** A problem with what was sent, shown above the page. */
  error?: string | undefined;
  /** Replaces the fixed message chosen by ?done=; null shows none (forms, confirmations, errors). */
  flash?: string | null | undefined;
}

declare module 'hono' {
  interface ContextRenderer {
    (content: string | Promise<string>, meta: PageMeta): Response | Promise<Response>;
  }
}

/** Flash messages by key, so a link cannot put arbitrary text on the page. */
const FLASH: Record<string, string> = {
  'image-created': 'Golden image created.',
  'image-saved': 'Golden image saved.',
  'image-deleted': 'Golden image deleted.',
  'group-created': 'Group created.',
  'group-saved': 'Group saved.',
  'group-deleted': 'Group deleted.',
  'group-assigned': 'Group assigned.',
  'group-unassigned': 'Group no longer has a golden image.',
  'blob-deleted': 'Package deleted.',
  'blob-uploaded': 'Package stored and verified.',
  'blob-uploaded-unchecked':
    'Package stored. No checksum file was given, so its SHA-256 was not compared with anything: check it against the one you expect.',
  'blob-arch-saved': 'Architecture saved.',
  'upload-discarded': 'Unfinished upload discarded; its bytes are gone.',
  'verify-started': 'Integrity checks started; this page shows their progress.',
  'verify-cancelled': 'Integrity checks cancelled.',
  'password-changed': 'Password changed.',
  'fetch-started': 'Download started; its progress is below.',
  'fetch-cancelled': 'Download cancelled; nothing was stored.',
  'token-revoked': 'API token revoked.',
  'links-checked': 'Links checked; the result is below.',
  'portal-confirmed': 'Marked as entered in the portal.',
  'settings-saved': 'Public address saved.',
  'settings-cleared': 'Public address cleared: no Download URL is offered until one is set.',
  'site-created': 'Site created.',
  'site-saved': 'Site saved.',
  'site-deleted': 'Site deleted: its Macs are served by this mirror.',
  'replica-enabled': 'Replica enabled.',
  'replica-disabled': 'Replica disabled: no Mac is sent to it.',
  'replica-weight-saved': 'Weight saved.',
  'replica-check-passed': 'Replica checked: it passed.',
  'replica-check-failed':
    'Replica checked: it failed, and gets no Mac until it passes again (the reason is on its card).',
  'replica-check-skipped': 'A disabled replica is not checked: enable it first.',
  'replica-forgotten': 'Replica forgotten. If it is still running, it reappears with its next heartbeat.',
  'update-published': 'Version published: it is in the feed Macs read.',
  'update-unpublished': 'Version unpublished: the feed no longer lists it (its file stays until garbage collection).',
  'update-rolled-back': 'Rolled back: this version is published and every newer one of its major unpublished.',
  'update-alert-kept': 'Alert closed: the stored file stays the one served.',
  'update-alert-taken': 'Alert closed: the new bytes are now this version’s file.',
  'update-added': 'The .dmg is stored. Publish it to put it in the feed.',
  'update-added-published': 'The .dmg is stored and published: it is in the feed Macs read.',
  'updates-synced': 'Upstream read: each feed’s status and the versions below show what changed.',
  'updates-sync-running': 'The sync is still downloading and goes on in the background; reload this page to follow it.',
};

function flashOf(c: Context, meta: PageMeta): string | undefined {
  if (meta.flash !== undefined) return meta.flash ?? undefined;
  return FLASH[c.req.query('done') ?? ''];
}

/** The middleware that makes `c.render()` frame a page; no DOCTYPE, as the pages have always been served. */
export function pageRenderer() {
  return jsxRenderer(
    (props, c) => (
      <Frame
        title={props.title}
        user={userOf(c as WebContext)}
        address={(c as WebContext).get('publicAddress') as PublicAddress | undefined}
        active={props.active}
        flash={flashOf(c, props)}
        error={props.error}
        scripts={props.scripts}
      >
        {props.children}
      </Frame>
    ),
    { docType: false },
  );
}
