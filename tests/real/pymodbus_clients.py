#!/usr/bin/python3
"""pymodbus on both sides of the multiplexer, for tests/check_e2e_realmodbus.

  pymodbus_clients.py server [MAX_CONNS [PORT]]
      A pymodbus TCP server on 127.0.0.1:PORT (default 0: the kernel picks
      one; a given port is for coming back on the same one). It prints "listening on 127.0.0.1:PORT", then "accepted N" for each
      connection it serves and "rejected N" for each one it closes at once
      because MAX_CONNS (default 1) are already open. Holding register A
      starts as value(A) (below). Runs until SIGTERM.
  pymodbus_clients.py clients PORT NCLIENTS ROUNDS
      NCLIENTS pymodbus clients at once, each on its own connection and
      unit id, writing and reading back holding registers of its own and
      reading the shared ones; every value is checked. Prints a summary
      line "clients: ok=N bad=N errors=N"; exit 0 only when all is right.
  pymodbus_clients.py outage PORT NCLIENTS STOPFILE
      NCLIENTS clients reading the shared registers in a loop until the file
      STOPFILE exists (or 60 s pass), while the test stops and restarts the
      target. A gateway exception (0x0A, 0x0B) is a right answer then; a
      wrong value, another error or a dropped connection is not. Prints
      "progress ok=N" every 200 good reads, "gateway 0xNN" the first time
      each code comes, and "outage: ok=N gateway=N bad=N errors=N"; exit 0
      when bad and errors are 0.
  pymodbus_clients.py gateway-error PORT
      Two reads on one connection must each come back as a Modbus
      exception 0x0A or 0x0B (a gateway error), not as a dropped socket.
      Prints "gateway-error: codes=A,B connected=1"; exit 0 when so.

Exit 77 when pymodbus cannot be imported (automake's SKIP).
"""
import asyncio
import logging
import os
import signal
import sys
import threading
import time
import types


def stub_serial_asyncio():
    """Debian 12's pymodbus (3.0.0rc1) imports serial_asyncio in its server
    and client modules even for TCP; without python3-serial-asyncio the
    import fails. Only TCP is used here, so a stand-in that refuses serial
    connections lets the TCP classes load."""
    try:
        import serial_asyncio  # noqa: F401
    except ImportError:
        stub = types.ModuleType("serial_asyncio")

        async def create_serial_connection(*args, **kwargs):
            raise NotImplementedError("serial_asyncio is not installed")

        stub.create_serial_connection = create_serial_connection
        sys.modules["serial_asyncio"] = stub


stub_serial_asyncio()
try:
    import pymodbus
    from pymodbus.client import ModbusTcpClient
    from pymodbus.datastore import (ModbusSequentialDataBlock, ModbusServerContext,
                                    ModbusSlaveContext)
    from pymodbus.pdu import ExceptionResponse
    from pymodbus.server.async_io import ModbusConnectedRequestHandler, ModbusTcpServer
except ImportError as exc:  # the test skips, naming what is missing
    print(f"pymodbus is missing: {exc}", file=sys.stderr)
    sys.exit(77)

SHARED_BASE = 5000   # registers every client only reads
SHARED_COUNT = 40
OWN_SPAN = 100       # client i owns registers i*OWN_SPAN .. +OWN_SPAN-1
NREGS = 8192


def value(addr):
    """The initial content of holding register addr."""
    return (addr * 31 + 7) & 0xFFFF


def serve(max_conns, port):
    counts = {"open": 0, "accepted": 0, "rejected": 0}

    class LimitedHandler(ModbusConnectedRequestHandler):
        """Serves at most max_conns connections at once, like an inverter."""

        def connection_made(self, transport):
            if counts["open"] >= max_conns:
                self.refused = True
                counts["rejected"] += 1
                print(f"rejected {counts['rejected']}", flush=True)
                transport.abort()
                return
            self.refused = False
            counts["open"] += 1
            counts["accepted"] += 1
            print(f"accepted {counts['accepted']}", flush=True)
            super().connection_made(transport)

        def connection_lost(self, call_exc):
            if self.refused:
                return
            counts["open"] -= 1
            super().connection_lost(call_exc)

    async def run():
        block = ModbusSequentialDataBlock(0, [value(a) for a in range(NREGS)])
        store = ModbusSlaveContext(hr=block, zero_mode=True)
        context = ModbusServerContext(slaves=store, single=True)
        server = ModbusTcpServer(context, address=("127.0.0.1", port), handler=LimitedHandler,
                                 allow_reuse_address=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        task = asyncio.create_task(server.serve_forever())
        await asyncio.wait({task, server.serving}, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            task.result()  # raises what went wrong (a port in use)
            raise RuntimeError("the server stopped before it listened")
        bound = server.server.sockets[0].getsockname()[1]
        print(f"listening on 127.0.0.1:{bound}", flush=True)
        await stop.wait()
        await server.server_close()
        task.cancel()
        print(f"stopping: accepted {counts['accepted']} rejected {counts['rejected']}", flush=True)

    asyncio.run(run())
    return 0


def client_work(port, index, rounds, result):
    unit = 1 + index
    base = index * OWN_SPAN
    client = ModbusTcpClient("127.0.0.1", port=port, timeout=10, retries=0)
    ok = bad = errors = 0
    try:
        if not client.connect():
            result[index] = (0, 0, 1, "cannot connect")
            return
        for r in range(rounds):
            count = 1 + (index + r) % 20
            vals = [(index * 4099 + r * 131 + k) & 0xFFFF for k in range(count)]
            steps = [
                ("write_registers", lambda: client.write_registers(base, vals, slave=unit), None),
                ("read own", lambda: client.read_holding_registers(base, count, slave=unit), vals),
                ("write_register", lambda: client.write_register(base + 50, vals[0] ^ 0x5A5A,
                                                                 slave=unit), None),
                ("read single", lambda: client.read_holding_registers(base + 50, 1, slave=unit),
                 [vals[0] ^ 0x5A5A]),
                ("read shared",
                 lambda: client.read_holding_registers(SHARED_BASE + r % 10, SHARED_COUNT - 10,
                                                       slave=unit),
                 [value(SHARED_BASE + r % 10 + k) for k in range(SHARED_COUNT - 10)]),
            ]
            for name, call, want in steps:
                try:
                    rr = call()
                except Exception as exc:  # a dropped connection, a timeout
                    errors += 1
                    print(f"client {index} round {r} {name}: {exc!r}", file=sys.stderr)
                    continue
                if rr.isError():
                    errors += 1
                    print(f"client {index} round {r} {name}: error {rr}", file=sys.stderr)
                elif rr.unit_id != unit:
                    bad += 1
                    print(f"client {index} round {r} {name}: unit {rr.unit_id}, sent {unit}",
                          file=sys.stderr)
                elif want is not None and list(rr.registers) != want:
                    bad += 1
                    print(f"client {index} round {r} {name}: got {list(rr.registers)}, "
                          f"want {want}", file=sys.stderr)
                else:
                    ok += 1
        result[index] = (ok, bad, errors, "")
    finally:
        client.close()


def clients(port, nclients, rounds):
    result = [None] * nclients
    threads = [threading.Thread(target=client_work, args=(port, i, rounds, result))
               for i in range(nclients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    ok = sum(r[0] for r in result if r)
    bad = sum(r[1] for r in result if r)
    errors = sum(r[2] for r in result if r) + sum(1 for r in result if r is None)
    print(f"clients: ok={ok} bad={bad} errors={errors} expected={nclients * rounds * 5}",
          flush=True)
    return 0 if bad == 0 and errors == 0 and ok == nclients * rounds * 5 else 1


def outage(port, nclients, stopfile):
    lock = threading.Lock()
    totals = {"ok": 0, "gateway": 0, "bad": 0, "errors": 0}
    seen = set()

    def count(what, code=None):
        with lock:
            totals[what] += 1
            if what == "ok" and totals["ok"] % 200 == 0:
                print(f"progress ok={totals['ok']}", flush=True)
            if code is not None and code not in seen:
                seen.add(code)
                print(f"gateway 0x{code:02X}", flush=True)

    def work(index):
        unit = 1 + index
        client = ModbusTcpClient("127.0.0.1", port=port, timeout=10, retries=0)
        if not client.connect():
            count("errors")
            return
        deadline = time.monotonic() + 60
        i = 0
        while not os.path.exists(stopfile) and time.monotonic() < deadline:
            addr = SHARED_BASE + (index * 7 + i) % 20
            n = 1 + i % 16
            i += 1
            try:
                rr = client.read_holding_registers(addr, n, slave=unit)
            except Exception as exc:  # a dropped connection, a timeout
                print(f"client {index}: {exc!r}", file=sys.stderr)
                count("errors")
                break
            if isinstance(rr, ExceptionResponse) and rr.exception_code in (0x0A, 0x0B):
                count("gateway", rr.exception_code)
                time.sleep(0.005)  # pacing while the target is away, not a wait for it
            elif rr.isError():
                print(f"client {index}: {rr!r}", file=sys.stderr)
                count("errors")
                break
            elif rr.unit_id != unit or list(rr.registers) != [value(addr + k) for k in range(n)]:
                print(f"client {index}: wrong answer {rr!r}", file=sys.stderr)
                count("bad")
            else:
                count("ok")
        client.close()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(nclients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    print(f"outage: ok={totals['ok']} gateway={totals['gateway']} bad={totals['bad']} "
          f"errors={totals['errors']}", flush=True)
    return 0 if totals["bad"] == 0 and totals["errors"] == 0 else 1


def gateway_error(port):
    client = ModbusTcpClient("127.0.0.1", port=port, timeout=10, retries=0)
    if not client.connect():
        print("gateway-error: cannot connect", flush=True)
        return 1
    codes = []
    for i in range(2):
        try:
            rr = client.read_holding_registers(10 + i, 2, slave=3)
        except Exception as exc:
            print(f"gateway-error: read {i} raised {exc!r}", flush=True)
            return 1
        if not isinstance(rr, ExceptionResponse):
            print(f"gateway-error: read {i} answered {rr!r}, not an ExceptionResponse",
                  flush=True)
            return 1
        codes.append(rr.exception_code)
    connected = 1 if client.is_socket_open() else 0
    client.close()
    print(f"gateway-error: codes={','.join(f'0x{c:02X}' for c in codes)} connected={connected}",
          flush=True)
    return 0 if all(c in (0x0A, 0x0B) for c in codes) and connected else 1


def main(argv):
    logging.basicConfig(level=logging.CRITICAL)
    if len(argv) >= 2 and argv[1] == "version":
        print(pymodbus.__version__)
        return 0
    if len(argv) in (2, 3, 4) and argv[1] == "server":
        return serve(int(argv[2]) if len(argv) >= 3 else 1, int(argv[3]) if len(argv) == 4 else 0)
    if len(argv) == 5 and argv[1] == "clients":
        return clients(int(argv[2]), int(argv[3]), int(argv[4]))
    if len(argv) == 5 and argv[1] == "outage":
        return outage(int(argv[2]), int(argv[3]), argv[4])
    if len(argv) == 3 and argv[1] == "gateway-error":
        return gateway_error(int(argv[2]))
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
