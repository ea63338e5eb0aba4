/** Settings: the public address Macs use (MIRROR_PUBLIC_URL wins when set). */
import { Hono } from 'hono';
import { updateSettings } from '../../server/services/settings.js';
import { addressOf, done, type WebContext, type WebDeps, type WebEnv } from '../env.js';
import { field, formError, type FormError } from '../forms.js';
import { SettingsPage } from '../pages/settings.js';

export function settingsRoutes(deps: WebDeps): Hono<WebEnv> {
  const app = new Hono<WebEnv>();

  const page = (c: WebContext, value: string, error?: FormError) => {
    c.status(error?.status ?? 200);
    return c.render(
      <SettingsPage
        address={addressOf(c)}
        value={value}
        seenAt={new URL(c.req.url).origin}
        fieldError={error?.fields.publicUrl}
      />,
      { title: 'Settings', active: '/admin/settings', error: error?.message },
    );
  };

  app.get('/', (c) => page(c, addressOf(c).stored ?? ''));
  app.post('/', async (c) => {
    const form = await c.req.parseBody();
    const clear = field(form, 'action') === 'clear';
    const value = field(form, 'publicUrl');
    try {
      await updateSettings(deps, c.get('actor'), { publicUrl: clear ? null : value });
      return done(c, '/admin/settings', clear ? 'settings-cleared' : 'settings-saved');
    } catch (err) {
      return page(c, value, formError(err));
    }
  });
  return app;
}
