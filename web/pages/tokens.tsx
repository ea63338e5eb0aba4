import type { FC } from 'hono/jsx';
import { TOKEN_SCOPES, type ApiTokenView, type TokenScope } from '../../server/services/auth.js';
import { DataTable, Field, fieldState, PostButton } from '../components.js';
import { CopyField, CsrfField, formatDate } from '../layout.js';

/** What each scope allows, in the words the README uses. */
export const SCOPE_HELP: Record<TokenScope, string> = {
  admin: 'everything, like a signed-in admin',
  read: 'GET and HEAD of the API, and /metrics',
  sync: 'only what goldmirror sync reads from this mirror (the export manifest)',
};

export interface TokenFormValues {
  name: string;
  scope: string;
}

/** API tokens: the list with scope and last use, a create form, and a new token shown once. */
export const TokensPage: FC<{
  tokens: ApiTokenView[];
  values: TokenFormValues;
  created?: { name: string; scope: TokenScope; token: string };
  fieldErrors?: Record<string, string>;
}> = ({ tokens, values, created, fieldErrors = {} }) => (
  <>
    {created && (
      <section class="card" aria-labelledby="new-token">
        <h2 id="new-token">
          Token {created.name} (scope {created.scope})
        </h2>
        <p>Copy it now: it is shown only once, and only its hash is kept.</p>
        <CopyField id="token-value" label="Token" value={created.token} />
      </section>
    )}
    <p class="muted">
      Scripts and other mirrors send a token as <code>Authorization: Bearer …</code>. Give each the narrowest scope that
      works: a branch mirror that syncs from this one needs only <code>sync</code>.
    </p>
    <DataTable
      rows={tokens}
      empty={<p class="muted">No API tokens.</p>}
      columns={[
        { head: 'Name', cell: (t) => <td class="mono">{t.name}</td> },
        { head: 'Scope', cell: (t) => <td>{t.scope}</td> },
        { head: 'Created', narrow: true, cell: (t) => <td class="hide-narrow">{formatDate(t.createdAt)}</td> },
        { head: 'Last used', cell: (t) => <td>{formatDate(t.lastUsedAt)}</td> },
        {
          head: <span class="hide-narrow">Revoke</span>,
          cell: (t) => (
            <td>
              <PostButton action={`/admin/tokens/${encodeURIComponent(t.name)}/revoke`} label={`Revoke ${t.name}`}>
                Revoke
              </PostButton>
            </td>
          ),
        },
      ]}
    />
    <form method="post" action="/admin/tokens" class="card stack" novalidate>
      <h2>New token</h2>
      <CsrfField />
      <Field id="token-name" label="Name" required maxlength={64} {...fieldState(values, fieldErrors, 'name')} />
      <fieldset>
        <legend>Scope</legend>
        {TOKEN_SCOPES.map((scope) => (
          <label class="check">
            <input type="radio" name="scope" value={scope} checked={values.scope === scope} />
            <span>
              <strong>{scope}</strong>: {SCOPE_HELP[scope]}
            </span>
          </label>
        ))}
      </fieldset>
      <div class="actions">
        <button type="submit">Create token</button>
      </div>
    </form>
  </>
);
