/* The table of framings. */
#include "config.h"
#include "codec.h"

#include <string.h>

static const struct codec *const codecs[] = {
	&codec_echo, &codec_http, &codec_iso8583, &codec_mpu, &codec_modbus, NULL,
};

const struct codec *codec_find(const char *name)
{
	for (size_t i = 0; codecs[i] != NULL; i++)
		if (strcmp(codecs[i]->name, name) == 0)
			return codecs[i];
	return NULL;
}

const struct codec *const *codec_all(void)
{
	return codecs;
}
