/* A libmodbus RTU server on a serial port, for tests/check_e2e_serial_real:
 * a device nobody here wrote. Usage: rtu-server PORT BAUD UNIT. Holding
 * registers 0..8191 start as (a * 31 + 7) & 0xFFFF, as the pymodbus server
 * of tests/real/pymodbus_serial.py holds them. Prints "serving PORT" once
 * the port is open; runs until killed. */
#include <errno.h>
#include <modbus.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NREGS 8192

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: rtu-server PORT BAUD UNIT\n");
		return 2;
	}
	modbus_t *ctx = modbus_new_rtu(argv[1], atoi(argv[2]), 'N', 8, 1);
	modbus_mapping_t *map = modbus_mapping_new(0, 0, NREGS, 0);
	if (ctx == NULL || map == NULL || modbus_set_slave(ctx, atoi(argv[3])) < 0) {
		fprintf(stderr, "rtu-server: %s\n", modbus_strerror(errno));
		return 1;
	}
	for (unsigned a = 0; a < NREGS; a++)
		map->tab_registers[a] = (uint16_t)(a * 31u + 7u);
	if (modbus_connect(ctx) < 0) {
		fprintf(stderr, "rtu-server: cannot open %s: %s\n", argv[1], modbus_strerror(errno));
		return 1;
	}
	printf("serving %s\n", argv[1]);
	fflush(stdout);
	uint8_t req[MODBUS_RTU_MAX_ADU_LENGTH];
	for (;;) {
		int n = modbus_receive(ctx, req);
		if (n > 0) {
			modbus_reply(ctx, req, n, map);
		} else if (n < 0 && errno != EMBBADCRC && errno != EMBBADDATA && errno != ETIMEDOUT &&
			   errno != EMBBADSLAVE) {
			fprintf(stderr, "rtu-server: %s\n", modbus_strerror(errno));
			break;
		}
	}
	modbus_mapping_free(map);
	modbus_close(ctx);
	modbus_free(ctx);
	return 1;
}
