import type { FC } from 'hono/jsx';
import { Field } from '../components.js';
import { CsrfField } from '../layout.js';

/** The sign-in form; the frame shows no navigation until a session exists. */
export const LoginPage: FC<{ next: string; username?: string }> = ({ next, username }) => (
  <>
    <form method="post" action="/admin/login" class="card stack narrow">
      <input type="hidden" name="next" value={next} />
      <Field id="username" label="User name" autocomplete="username" required value={username ?? 'admin'} />
      <Field id="password" label="Password" type="password" autocomplete="current-password" required autofocus />
      <div class="actions">
        <button type="submit">Sign in</button>
      </div>
    </form>
    <p class="muted">
      On first start goldmirror prints the password of user <code>admin</code> and saves it in{' '}
      <code>initial-admin-password</code> in its data directory. Forgot it? On the server, run{' '}
      <code>goldmirror admin reset-password</code>.
    </p>
  </>
);

export const AccountPage: FC<{ fieldErrors?: Record<string, string> }> = ({ fieldErrors = {} }) => (
  <>
    <form method="post" action="/admin/account/password" class="card stack">
      <h2>Change password</h2>
      <CsrfField />
      <Field
        id="currentPassword"
        label="Current password"
        type="password"
        autocomplete="current-password"
        required
        error={fieldErrors.currentPassword}
      />
      <Field
        id="newPassword"
        label="New password (at least 10 characters)"
        type="password"
        autocomplete="new-password"
        required
        minlength={10}
        error={fieldErrors.newPassword}
      />
      <div class="actions">
        <button type="submit">Change password</button>
      </div>
      <p class="muted">Changing the password signs you out everywhere else.</p>
    </form>
    <section class="card">
      <h2>API tokens</h2>
      <p>
        Scripts and other mirrors use scoped API tokens instead of a password:{' '}
        <a href="/admin/tokens">manage API tokens</a>.
      </p>
    </section>
  </>
);

/** Under the error the frame shows: the way back. */
export const ErrorPage: FC = () => (
  <p>
    <a href="/admin">Back to the dashboard</a>
  </p>
);
