"""pymodbus's RTU server on a serial port, for tests/check_e2e_serial.

  pymodbus_serial.py check
      Exits 0 when pymodbus's serial server can be used.
  pymodbus_serial.py PORT [BAUD]
      Serves holding registers 0..8191 (register a holds (a*31+7) & 0xFFFF,
      as pymodbus_clients.py expects) for every unit id on the serial port
      PORT (a pty made by socat), RTU framing, BAUD (default 9600) 8N1.
      Prints "serving PORT" once the port is open; stops on SIGTERM.

Exit 77 when pymodbus or its serial support cannot be imported (SKIP).
"""
import asyncio
import signal
import sys

try:
    import serial  # noqa: F401  (python3-serial: pymodbus opens the port with it)
    import serial_asyncio  # noqa: F401  (python3-serial-asyncio: its serial server needs it)
    from pymodbus.datastore import (ModbusSequentialDataBlock, ModbusServerContext,
                                    ModbusSlaveContext)
    from pymodbus.framer.rtu_framer import ModbusRtuFramer
    from pymodbus.server.async_io import ModbusSerialServer
except ImportError as exc:  # the test skips, naming what is missing
    print(f"pymodbus's serial server is missing: {exc}", file=sys.stderr)
    sys.exit(77)

NREGS = 8192


def value(addr):
    """The initial content of holding register addr."""
    return (addr * 31 + 7) & 0xFFFF


async def run(port, baud):
    block = ModbusSequentialDataBlock(0, [value(a) for a in range(NREGS)])
    store = ModbusSlaveContext(hr=block, zero_mode=True)
    context = ModbusServerContext(slaves=store, single=True)
    server = ModbusSerialServer(context, framer=ModbusRtuFramer, port=port, baudrate=baud,
                                bytesize=8, parity="N", stopbits=1, timeout=0.005)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await server.start()  # opens the port (serve_forever only idles)
    if server.transport is None:
        print(f"cannot open {port}", file=sys.stderr)
        sys.exit(1)
    print(f"serving {port}", flush=True)
    await stop.wait()
    await server.shutdown()
    print("stopping", flush=True)


def main():
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    if sys.argv[1] == "check":
        return 0
    asyncio.run(run(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 9600))
    return 0


if __name__ == "__main__":
    sys.exit(main())
