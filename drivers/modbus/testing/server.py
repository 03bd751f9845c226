#!/usr/bin/python3
"""A real Modbus server (pymodbus) for the modbus driver's tests and benchmark.

Started as `/usr/bin/python3 server.py '<spec JSON>'`. The spec:
  {"tcp": {"host": "127.0.0.1", "port": 0}}              TCP server (port 0: any free port), or
  {"rtu": {"port": "/tmp/x/b", "baudrate": 9600, "parity": "N", "bytesize": 8, "stopbits": 1}}
  "units": {"1": {"hr": {"0": [1, 2, 3]}, "ir": {...}, "co": {...}, "di": {...}}}
      sparse tables: {start address: [values]}; an address not listed answers exception 2
  "fail": {"1": {"hr": [7]}}    reading these addresses raises inside the server: exception 4
  "missing": "ignore" | "gateway"   a unit not in "units" is silent (default) or gets exception 11
  "delay_ms": 0                 delay before each response (a slow device)

When serving it prints one JSON line {"ready": true, "port": N} on stdout. Commands on stdin, one JSON
per line: {"set": {"unit": 1, "table": "hr", "address": 0, "values": [..]}} answers {"ok": true}.
"""
import asyncio
import json
import logging
import sys
import threading
import time

from pymodbus.datastore import ModbusServerContext, ModbusSlaveContext
from pymodbus.datastore.store import ModbusSparseDataBlock
from pymodbus.framer.rtu_framer import ModbusRtuFramer
from pymodbus.framer.socket_framer import ModbusSocketFramer
from pymodbus.server.async_io import ModbusSerialServer, ModbusTcpServer

logging.basicConfig(level=logging.CRITICAL)
logging.getLogger("pymodbus").setLevel(logging.CRITICAL)


class FailingBlock(ModbusSparseDataBlock):
    """A sparse block whose listed addresses raise on read: pymodbus answers SlaveFailure (4)."""

    def __init__(self, values, failing):
        super().__init__(values)
        self.failing = set(failing)

    def getValues(self, address, count=1):  # noqa: N802 (pymodbus' name)
        if self.failing.intersection(range(address, address + count)):
            raise RuntimeError("simulated device failure")
        return super().getValues(address, count)


def block(tables, fails, name):
    values = {int(k): v for k, v in tables.get(name, {}).items()}
    return FailingBlock(values, fails.get(name, []))


def main():
    spec = json.loads(sys.argv[1])
    slaves = {}
    for unit, tables in spec.get("units", {}).items():
        fails = spec.get("fail", {}).get(unit, {})
        slaves[int(unit)] = ModbusSlaveContext(
            di=block(tables, fails, "di"),
            co=block(tables, fails, "co"),
            hr=block(tables, fails, "hr"),
            ir=block(tables, fails, "ir"),
            zero_mode=True,
        )
    ignore_missing = spec.get("missing", "ignore") == "ignore"
    if not ignore_missing and 255 not in slaves:
        # pymodbus' framers drop frames for unit ids they do not serve unless 0 or 255 is served; with
        # 255 every frame reaches the lookup, which answers GatewayNoResponse (11) for unknown units.
        slaves[255] = ModbusSlaveContext(zero_mode=True)
    context = ModbusServerContext(slaves=slaves, single=False)
    delay_s = spec.get("delay_ms", 0) / 1000

    def manipulate(response):
        if delay_s:
            time.sleep(delay_s)
        return response, False

    async def serve():
        loop = asyncio.get_running_loop()
        if "tcp" in spec:
            tcp = spec["tcp"]
            server = ModbusTcpServer(
                context,
                ModbusSocketFramer,
                None,
                (tcp.get("host", "127.0.0.1"), tcp.get("port", 0)),
                allow_reuse_address=True,
                ignore_missing_slaves=ignore_missing,
                response_manipulator=manipulate,
            )
            task = asyncio.create_task(server.serve_forever())
            await server.serving
            port = server.server.sockets[0].getsockname()[1]
        else:
            rtu = spec["rtu"]
            server = ModbusSerialServer(
                context,
                ModbusRtuFramer,
                port=rtu["port"],
                baudrate=rtu.get("baudrate", 9600),
                parity=rtu.get("parity", "N"),
                bytesize=rtu.get("bytesize", 8),
                stopbits=rtu.get("stopbits", 1),
                ignore_missing_slaves=ignore_missing,
                response_manipulator=manipulate,
            )
            await server.start()
            task = asyncio.create_task(server.serve_forever())
            port = rtu["port"]
        print(json.dumps({"ready": True, "port": port}), flush=True)

        def commands():
            for line in sys.stdin:
                line = line.strip()
                if not line:
                    continue
                cmd = json.loads(line)
                if "set" in cmd:
                    s = cmd["set"]
                    fx = {"co": 1, "di": 2, "hr": 3, "ir": 4}[s["table"]]
                    loop.call_soon_threadsafe(context[s["unit"]].setValues, fx, s["address"], s["values"])
                print(json.dumps({"ok": True}), flush=True)
            loop.call_soon_threadsafe(task.cancel)

        threading.Thread(target=commands, daemon=True).start()
        try:
            await task
        except asyncio.CancelledError:
            pass

    asyncio.run(serve())


if __name__ == "__main__":
    main()
