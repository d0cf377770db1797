/* Modbus/TCP (MBAP) helpers shared by the codec and the exchange. */
#include "config.h"
#include "modbus.h"

size_t modbus_exception(const uint8_t *req, uint8_t code, uint8_t *out)
{
	out[0] = req[0];
	out[1] = req[1];
	out[2] = 0;
	out[3] = 0;
	out[4] = 0;
	out[5] = 3; /* unit id, function, exception code */
	out[6] = req[6];
	out[7] = (uint8_t)(req[7] | 0x80);
	out[8] = code;
	return MODBUS_EXC_LEN;
}

uint16_t modbus_ids_take(struct modbus_ids *ids)
{
	return ids->next++;
}
