import type { FC } from 'hono/jsx';
import { CsrfField, FieldError } from '../layout.js';

/** The sign-in form; the frame shows no navigation until a session exists. */
export const LoginPage: FC<{ next: string; username?: string }> = ({ next, username }) => (
  <>
    <form method="post" action="/admin/login" class="card stack narrow">
      <input type="hidden" name="next" value={next} />
      <label for="username">User name</label>
      <input id="username" name="username" type="text" autocomplete="username" required value={username ?? 'admin'} />
      <label for="password">Password</label>
      <input id="password" name="password" type="password" autocomplete="current-password" required autofocus />
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
      <label for="currentPassword">Current password</label>
      <input
        id="currentPassword"
        name="currentPassword"
        type="password"
        autocomplete="current-password"
        required
        aria-invalid={fieldErrors.currentPassword ? 'true' : undefined}
        aria-describedby={fieldErrors.currentPassword ? 'currentPassword-error' : undefined}
      />
      <FieldError id="currentPassword" message={fieldErrors.currentPassword} />
      <label for="newPassword">New password (at least 10 characters)</label>
      <input
        id="newPassword"
        name="newPassword"
        type="password"
        autocomplete="new-password"
        required
        minlength={10}
        aria-invalid={fieldErrors.newPassword ? 'true' : undefined}
        aria-describedby={fieldErrors.newPassword ? 'newPassword-error' : undefined}
      />
      <FieldError id="newPassword" message={fieldErrors.newPassword} />
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
