#!/usr/bin/python3
"""A real Modbus server (pymodbus) for the modbus driver's tests and benchmark.

Started as `/usr/bin/python3 server.py '<spec JSON>'`. The spec:
  {"tcp": {"host": "127.0.0.1", "port": 0}}              TCP server (port 0: any free port), or
  {"rtu": {"port": "/tmp/x/b", "baudrate": 9600, "parity": "N", "bytesize": 8, "stopbits": 1}}
  "framer": "rtu"               with "tcp": RTU frames (unit id, PDU, CRC; no MBAP) on the TCP socket,
                                as a serial-to-Ethernet converter in transparent mode carries them
  "units": {"1": {"hr": {"0": [1, 2, 3]}, "ir": {...}, "co": {...}, "di": {...}}}
      sparse tables: {start address: [values]}; an address not listed answers exception 2
  "fail": {"1": {"hr": [7]}}    reading these addresses raises inside the server: exception 4
  "missing": "ignore" | "gateway"   a unit not in "units" is silent (default) or gets exception 11
  "delay_ms": 0                 delay before each response (a slow device)
  "slow_ms": {"2": 500}         delay before each response of these units only (one slow unit on a bus);
                                the server answers one request at a time, like an RTU line behind a gateway
  "exceptions": {"1": {"hr": {"5": 6}}}   reading a range that includes these addresses answers this
                                exception code (6: busy, 2: illegal address, ...)
  "wrong_tid": {"3": "before"}  TCP: answer this unit's requests with a copy under a wrong transaction id
                                first, then the right answer ("before"), or with the wrong one only
                                ("instead")

When serving it prints one JSON line {"ready": true, "port": N} on stdout. Commands on stdin, one JSON
per line, each answered {"ok": true}: {"set": {"unit": 1, "table": "hr", "address": 0, "values": [..]}}
writes values; {"raise": {"unit": 1, "table": "hr", "address": 5, "code": 6}} makes an address answer an
exception from now on ("code": null: answer normally again).
"""
import asyncio
import ctypes
import json
import logging
import signal
import struct
import sys
import threading
import time

from pymodbus.datastore import ModbusServerContext, ModbusSlaveContext
from pymodbus.datastore.store import ModbusSparseDataBlock
from pymodbus.framer.rtu_framer import ModbusRtuFramer
from pymodbus.framer.socket_framer import ModbusSocketFramer
from pymodbus.pdu import ExceptionResponse
from pymodbus.server.async_io import ModbusSerialServer, ModbusTcpServer

logging.basicConfig(level=logging.CRITICAL)
logging.getLogger("pymodbus").setLevel(logging.CRITICAL)


class SimulatedException(RuntimeError):
    """Raised inside a read; pymodbus turns it into SlaveFailure (4), `manipulate` into its own code."""


# The exception code of the read being answered (set while reading, taken when the answer goes out:
# pymodbus reads and answers one request at a time on one event loop).
raised = {"code": None}


class FailingBlock(ModbusSparseDataBlock):
    """A sparse block whose listed addresses fail on read: with 4 (SlaveFailure) or a given code."""

    def __init__(self, values, failing, codes):
        super().__init__(values)
        self.codes = {a: 4 for a in failing}
        self.codes.update({int(a): c for a, c in codes.items()})

    def getValues(self, address, count=1):  # noqa: N802 (pymodbus' name)
        hit = [self.codes[a] for a in range(address, address + count) if a in self.codes]
        if hit:
            raised["code"] = hit[0]
            raise SimulatedException("simulated device failure")
        return super().getValues(address, count)


def block(tables, fails, codes, name):
    values = {int(k): v for k, v in tables.get(name, {}).items()}
    return FailingBlock(values, fails.get(name, []), codes.get(name, {}))


def mbap(transaction_id, unit_id, function_code, data):
    return struct.pack(">HHHBB", transaction_id, 0, len(data) + 2, unit_id, function_code) + data


def die_with_parent():
    """Linux: SIGTERM when the process that started this one dies, so a killed test run leaves no server."""
    try:
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: the closed stdin still ends the server


def main():
    die_with_parent()
    spec = json.loads(sys.argv[1])
    slaves = {}
    for unit, tables in spec.get("units", {}).items():
        fails = spec.get("fail", {}).get(unit, {})
        codes = spec.get("exceptions", {}).get(unit, {})
        slaves[int(unit)] = ModbusSlaveContext(
            di=block(tables, fails, codes, "di"),
            co=block(tables, fails, codes, "co"),
            hr=block(tables, fails, codes, "hr"),
            ir=block(tables, fails, codes, "ir"),
            zero_mode=True,
        )
    ignore_missing = spec.get("missing", "ignore") == "ignore"
    if not ignore_missing and 255 not in slaves:
        # pymodbus' framers drop frames for unit ids they do not serve unless 0 or 255 is served; with
        # 255 every frame reaches the lookup, which answers GatewayNoResponse (11) for unknown units.
        slaves[255] = ModbusSlaveContext(zero_mode=True)
    context = ModbusServerContext(slaves=slaves, single=False)
    delay_s = spec.get("delay_ms", 0) / 1000
    slow_s = {int(u): ms / 1000 for u, ms in spec.get("slow_ms", {}).items()}
    wrong_tid = {int(u): how for u, how in spec.get("wrong_tid", {}).items()}
    rtu_over_tcp = spec.get("framer") == "rtu"

    def manipulate(response):
        code = raised["code"]
        raised["code"] = None
        if code is not None and code != 4:
            original = response
            response = ExceptionResponse(original.original_code, code)
            response.transaction_id = original.transaction_id
            response.unit_id = original.unit_id
        pause_s = delay_s + slow_s.get(response.unit_id, 0)
        if pause_s:
            # Blocks the event loop on purpose: the server answers one request at a time.
            time.sleep(pause_s)
        how = wrong_tid.get(response.unit_id)
        if how is not None and "tcp" in spec and not rtu_over_tcp:
            data = response.encode()
            stray = mbap((response.transaction_id + 0x1000) & 0xFFFF, response.unit_id, response.function_code, data)
            right = mbap(response.transaction_id, response.unit_id, response.function_code, data)
            return (stray + right if how == "before" else stray), True
        return response, False

    async def serve():
        loop = asyncio.get_running_loop()
        if "tcp" in spec:
            tcp = spec["tcp"]
            server = ModbusTcpServer(
                context,
                ModbusRtuFramer if rtu_over_tcp else ModbusSocketFramer,
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
                if "raise" in cmd:
                    r = cmd["raise"]
                    codes = context[r["unit"]].store[{"co": "c", "di": "d", "hr": "h", "ir": "i"}[r["table"]]].codes
                    if r["code"] is None:
                        loop.call_soon_threadsafe(codes.pop, r["address"], None)
                    else:
                        loop.call_soon_threadsafe(codes.__setitem__, r["address"], r["code"])
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
