import type { FC } from 'hono/jsx';
import type { PublicAddress } from '../../server/services/settings.js';
import { Field } from '../components.js';
import { CsrfField, formatDate } from '../layout.js';

/** The public address Macs use: shown, editable, and locked (with the reason) while the configuration sets it. */
export const SettingsPage: FC<{
  address: PublicAddress;
  value: string;
  seenAt: string;
  fieldError?: string | undefined;
}> = ({ address, value, seenAt, fieldError }) => {
  const locked = address.source === 'config';
  return (
    <>
      <section class="card" aria-labelledby="public-address">
        <h2 id="public-address">Public address</h2>
        <p>
          The address Macs use to reach this mirror. Every Download URL starts with it, e.g.{' '}
          <code>http://mirror.example.lan:8080/d/…/Win11.pvmp</code>. Use a host name or address that every Mac of your
          users resolves and can reach (not <code>localhost</code> or <code>127.0.0.1</code>), with the port goldmirror
          listens on, or the address of a reverse proxy in front of it (a path prefix such as{' '}
          <code>https://intranet.example/mirror</code> is allowed).
        </p>
        <p id="address-current">
          {address.url === null ? (
            <strong class="warn-text">Not set: no Download URL is offered until it is.</strong>
          ) : (
            <>
              In use: <code class="mono">{address.url}</code>{' '}
              {locked
                ? '(set by MIRROR_PUBLIC_URL or publicUrl in the config file)'
                : `(set by ${address.updatedBy ?? '?'} on ${formatDate(address.updatedAt)})`}
            </>
          )}
        </p>
        {address.warnings.map((w) => (
          <p class="warn-text">{w}</p>
        ))}
        {locked ? (
          <p class="muted" id="address-locked">
            MIRROR_PUBLIC_URL (or <code>publicUrl</code> in the config file) is set, and it wins over this page. To
            change the address, change or remove it there and restart goldmirror.
            {address.stored ? ` The address stored here (${address.stored}) is used once it is removed.` : ''}
          </p>
        ) : (
          <form method="post" action="/admin/settings" class="stack" novalidate>
            <CsrfField />
            <Field
              id="publicUrl"
              label="Public address"
              inputmode="url"
              autocomplete="url"
              placeholder="http://mirror.example.lan:8080"
              value={value}
              error={fieldError}
              hint="publicUrl-hint"
            />
            <p class="muted" id="publicUrl-hint">
              This browser reached goldmirror at <code>{seenAt}</code>. If Macs use the same address, enter it; Macs
              often need another one (the server’s DNS name on the LAN, for instance). Changing the address changes
              every Download URL: each golden image then shows the new values to copy into the portal.
            </p>
            <div class="actions">
              <button type="submit" name="action" value="save">
                Save
              </button>
              {address.stored && (
                <button type="submit" name="action" value="clear" class="secondary">
                  Clear
                </button>
              )}
            </div>
          </form>
        )}
      </section>
    </>
  );
};
