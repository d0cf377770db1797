/* Which dialect a framing gets: the identity one, or one built on it. */
#include "config.h"
#include "dialect.h"

void dialect_init(struct dialect *d, const struct config *cfg)
{
	dialect_identity_init(d, cfg);
	if (cfg->codec->tagged) {
		d->settled = NULL; /* answers are rewritten (ids): only whole ones */
		d->shift = NULL;
		dialect_modbus_init(d, cfg);
	}
}
