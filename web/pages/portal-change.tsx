/** The notice that an image's portal values changed since they were last confirmed, on its page and on the dashboard. */
import type { FC } from 'hono/jsx';
import type { PortalChange, PortalFieldChange } from '../../server/services/portal-changes.js';
import { CsrfField, formatDate } from '../layout.js';

const fieldLabel: Record<PortalFieldChange['field'], string> = {
  enabled: 'Enable',
  downloadUrl: 'Download URL',
  sha256: 'SHA-256',
};

function shown(value: PortalFieldChange['from']): string {
  if (value === true) return 'on';
  if (value === false) return 'off';
  return value ?? 'not ready';
}

/** "Portal values changed — update the portal": old and new side by side, and the button that marks it done. */
export const PortalChangeBox: FC<{
  image: { id: number; name: string };
  change: PortalChange;
  back: string;
  heading?: 'h2' | 'h3';
}> = ({ image, change, back, heading = 'h2' }) => {
  const Heading = heading;
  return (
    <section class="card pending changes" aria-labelledby={`change-${image.id}`} data-pending-image={String(image.id)}>
      <Heading id={`change-${image.id}`}>
        Portal values changed — update the portal{heading === 'h3' ? `: ${image.name}` : ''}
      </Heading>
      <p>
        {change.since ? `Since ${formatDate(change.since)}, t` : 'T'}he portal needs other values than those last
        confirmed on {formatDate(change.confirmedAt)}. Until you copy the new values into the portal, Macs keep getting
        the old ones, and the old packages are kept.
      </p>
      <div class="table-wrap">
        <table>
          <thead>
            <tr>
              <th scope="col">Field</th>
              <th scope="col">In the portal now</th>
              <th scope="col">New value</th>
            </tr>
          </thead>
          <tbody>
            {change.changes.map((ch) => (
              <tr>
                <th scope="row">
                  {ch.label}: {fieldLabel[ch.field]}
                </th>
                <td class="old">{shown(ch.from)}</td>
                <td class="new">{shown(ch.to)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <form method="post" action={`/admin/images/${image.id}/portal/confirm`} class="actions">
        <CsrfField />
        <input type="hidden" name="fingerprint" value={change.fingerprint} />
        <input type="hidden" name="back" value={back} />
        <button type="submit">I updated the portal</button>
        {heading === 'h3' && <a href={`/admin/images/${image.id}`}>Open {image.name}</a>}
      </form>
    </section>
  );
};
