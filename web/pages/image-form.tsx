/** The golden image form (new and edit): name, description and one package slot per architecture. */
import type { FC } from 'hono/jsx';
import type { BlobView } from '../../server/services/blobs.js';
import { ARCHES, ARCH_LABELS, type Arch, type ImageView } from '../../server/services/images.js';
import { CsrfField, FieldError, formatBytes } from '../layout.js';

export interface ImageFormValues {
  name: string;
  description: string;
  arm64: { enabled: boolean; sha256: string };
  x86_64: { enabled: boolean; sha256: string };
}

export const ImageFormPage: FC<{
  image: ImageView | null;
  values: ImageFormValues;
  blobs: BlobView[];
  fieldErrors?: Record<string, string>;
  archWarnings?: string[];
}> = ({ image, values, blobs, fieldErrors = {}, archWarnings = [] }) => {
  const action = image ? `/admin/images/${image.id}/edit` : '/admin/images/new';
  const invalid = (field: string) => (fieldErrors[field] ? 'true' : undefined);
  const described = (field: string) => (fieldErrors[field] ? `${field.replace('.', '-')}-error` : undefined);
  return (
    <>
      <form method="post" action={action} class="card stack" novalidate>
        <CsrfField />
        {archWarnings.length > 0 && (
          <div class="alert" role="alert" id="arch-warnings">
            <p>
              <strong>Check the architectures before saving:</strong>
            </p>
            <ul>
              {archWarnings.map((w) => (
                <li>{w}.</li>
              ))}
            </ul>
            <label class="check" for="confirm-arch">
              <input id="confirm-arch" type="checkbox" name="confirmArch" value="yes" /> The packages are right; use
              them anyway
            </label>
          </div>
        )}
        <label for="name">Name (shown to users)</label>
        <input
          id="name"
          name="name"
          type="text"
          required
          maxlength={100}
          value={values.name}
          aria-invalid={invalid('name')}
          aria-describedby={described('name')}
        />
        <FieldError id="name" message={fieldErrors.name} />
        <label for="description">Description (optional, shown to users)</label>
        <textarea id="description" name="description" rows={3} maxlength={1000} aria-invalid={invalid('description')}>
          {values.description}
        </textarea>
        <FieldError id="description" message={fieldErrors.description} />
        {ARCHES.map((arch) => (
          <ArchFieldset
            arch={arch}
            value={values[arch]}
            blobs={blobs}
            error={fieldErrors[`${arch}.sha256`] ?? fieldErrors[arch]}
          />
        ))}
        <div class="actions">
          <button type="submit">{image ? 'Save changes' : 'Create golden image'}</button>
          <a href={image ? `/admin/images/${image.id}` : '/admin/images'}>Cancel</a>
        </div>
      </form>
    </>
  );
};

const PackageOption: FC<{ blob: BlobView; selected: boolean }> = ({ blob, selected }) => (
  <option value={blob.sha256} selected={selected} data-arch={blob.arch}>
    {blob.name} · {formatBytes(blob.size)} · {blob.sha256.slice(0, 12)}…{blob.state === 'ok' ? '' : ` (${blob.state})`}
  </option>
);

/**
 * One architecture slot. Its picker offers the packages marked for this
 * architecture, then those whose architecture was never recorded; a package
 * marked for the other one appears only when it is already the choice, with a warning.
 */
const ArchFieldset: FC<{
  arch: Arch;
  value: { enabled: boolean; sha256: string };
  blobs: BlobView[];
  error: string | undefined;
}> = ({ arch, value, blobs, error }) => {
  const selected = blobs.find((b) => b.sha256 === value.sha256);
  const marked = blobs.filter((b) => b.arch === arch);
  const unmarked = blobs.filter((b) => b.arch === 'unknown');
  const wrong = selected && selected.arch !== arch && selected.arch !== 'unknown' ? selected : undefined;
  const other = ARCH_LABELS[arch === 'arm64' ? 'x86_64' : 'arm64'];
  return (
    <fieldset data-slot={arch}>
      <legend>{ARCH_LABELS[arch]}</legend>
      <label class="check" for={`${arch}-enabled`}>
        <input id={`${arch}-enabled`} name={`${arch}.enabled`} type="checkbox" value="on" checked={value.enabled} />{' '}
        Enable for {ARCH_LABELS[arch]}
      </label>
      <label for={`${arch}-sha256`}>Package</label>
      <select
        id={`${arch}-sha256`}
        name={`${arch}.sha256`}
        data-slot={arch}
        aria-invalid={error ? 'true' : undefined}
        aria-describedby={[error ? `${arch}-sha256-error` : '', `${arch}-arch-warning`].filter(Boolean).join(' ')}
      >
        <option value="">— none —</option>
        {marked.length > 0 && (
          <optgroup label={`Marked ${ARCH_LABELS[arch]}`}>
            {marked.map((b) => (
              <PackageOption blob={b} selected={b.sha256 === value.sha256} />
            ))}
          </optgroup>
        )}
        {unmarked.length > 0 && (
          <optgroup label="Architecture not recorded">
            {unmarked.map((b) => (
              <PackageOption blob={b} selected={b.sha256 === value.sha256} />
            ))}
          </optgroup>
        )}
        {wrong && (
          <optgroup label={`Marked ${other}`}>
            <PackageOption blob={wrong} selected />
          </optgroup>
        )}
      </select>
      <FieldError id={`${arch}-sha256`} message={error} />
      <p
        class="field-error warn"
        id={`${arch}-arch-warning`}
        data-other={other}
        data-label={ARCH_LABELS[arch]}
        hidden={!wrong}
      >
        {wrong ? `This package is marked for ${other}, not ${ARCH_LABELS[arch]}.` : ''}
      </p>
      {selected && (
        <p class="muted">
          {formatBytes(selected.size)} · SHA-256 <span class="mono">{selected.sha256}</span>
        </p>
      )}
      {marked.length === 0 && unmarked.length === 0 && !wrong && (
        <p class="muted">
          No package for {ARCH_LABELS[arch]} yet. <a href="/admin/upload">Upload one</a>.
        </p>
      )}
    </fieldset>
  );
};
