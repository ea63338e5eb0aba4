/** The golden image list and the confirmation before deleting one. */
import type { FC } from 'hono/jsx';
import { ARCHES, type ImageView } from '../../server/services/images.js';
import { CsrfField, StateBadge } from '../layout.js';

export const ImagesPage: FC<{ images: ImageView[] }> = ({ images }) => (
  <>
    <p>
      <a class="button" href="/admin/images/new">
        New golden image
      </a>
    </p>
    {images.length === 0 ? (
      <p class="muted">No golden images yet. Upload the packages first, then create an image from them.</p>
    ) : (
      <div class="table-wrap">
        <table>
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Apple silicon</th>
              <th scope="col">Intel</th>
              <th scope="col">Groups</th>
              <th scope="col" class="hide-narrow">
                Downloads
              </th>
            </tr>
          </thead>
          <tbody>
            {images.map((i) => (
              <tr>
                <td>
                  <a href={`/admin/images/${i.id}`}>{i.name}</a>
                </td>
                {ARCHES.map((arch) => (
                  <td>{i[arch].enabled ? <StateBadge state={i[arch].state} /> : <span class="muted">off</span>}</td>
                ))}
                <td>{i.groups.map((g) => g.name).join(', ') || <span class="muted">none</span>}</td>
                <td class="hide-narrow">{i.downloads}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    )}
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
      <form method="post" action={`/admin/images/${image.id}/delete`} class="actions">
        <CsrfField />
        <button type="submit" class="danger">
          Delete {image.name}
        </button>
        <a href={`/admin/images/${image.id}`}>Cancel</a>
      </form>
    </div>
  </>
);
