/** The golden image list and the confirmation before deleting one. */
import type { FC } from 'hono/jsx';
import { ARCH_LABELS, ARCHES, type ImageView } from '../../server/services/images.js';
import { ConfirmForm, DataTable, LinkCell } from '../components.js';
import { StateBadge } from '../layout.js';

export const ImagesPage: FC<{ images: ImageView[] }> = ({ images }) => (
  <>
    <p>
      <a class="button" href="/admin/images/new">
        New golden image
      </a>
    </p>
    <DataTable
      rows={images}
      empty={<p class="muted">No golden images yet. Upload the packages first, then create an image from them.</p>}
      columns={[
        { head: 'Name', cell: (i) => <LinkCell href={`/admin/images/${i.id}`}>{i.name}</LinkCell> },
        ...ARCHES.map((arch) => ({
          head: ARCH_LABELS[arch],
          cell: (i: ImageView) => (
            <td>{i[arch].enabled ? <StateBadge state={i[arch].state} /> : <span class="muted">off</span>}</td>
          ),
        })),
        {
          head: 'Groups',
          cell: (i) => <td>{i.groups.map((g) => g.name).join(', ') || <span class="muted">none</span>}</td>,
        },
        { head: 'Downloads', narrow: true, cell: (i) => <td class="hide-narrow">{i.downloads}</td> },
      ]}
    />
  </>
);

export const ImageDeletePage: FC<{ image: ImageView }> = ({ image }) => (
  <>
    <div class="card">
      <p>
        Deleting a golden image cannot be undone. Delete it in the portal too. Its packages become “retired”: garbage
        collection keeps them for the grace period (MIRROR_GC_GRACE) after this and after their last download, in case a
        Mac still fetches them.
      </p>
      {image.groups.length > 0 ? (
        <p>
          <strong>These groups will be left without a golden image:</strong>{' '}
          {image.groups.map((g) => g.name).join(', ')}.
        </p>
      ) : (
        <p>No group uses this image.</p>
      )}
      <ConfirmForm action={`/admin/images/${image.id}/delete`} cancel={`/admin/images/${image.id}`}>
        Delete {image.name}
      </ConfirmForm>
    </div>
  </>
);
