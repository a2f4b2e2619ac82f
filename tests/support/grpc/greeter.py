#!/usr/bin/python3
"""The Greeter service (greeter.proto) as a grpcio server, and a client that calls every RPC.

  greeter.py generate OUT_DIR                 greeter_pb2.py and greeter.pb (descriptor set) into OUT_DIR
  greeter.py serve PORT baseline|candidate    serves on 127.0.0.1:PORT until killed
  greeter.py call PORT [ROUNDS]               calls every RPC ROUNDS times, prints one line per call

Debian's python3-grpcio, without generated gRPC stubs: the handlers are registered by method
path, which is also what a replay sees. The candidate differs from the baseline on purpose, once
per kind of difference the grpc comparator must find:
  SayHello("field")      one field differs (message text)
  Lookup("missing")      another status (NOT_FOUND on the baseline, INTERNAL on the candidate)
  ListGreetings("count") one more message in the stream
Everything else answers the same (trace_id differs on every reply: the comparator ignores it).
"""
import os
import subprocess
import sys
import time
import uuid
from concurrent import futures

HERE = os.path.dirname(os.path.abspath(__file__))


def generate(out_dir):
    os.makedirs(out_dir, exist_ok=True)
    subprocess.run(["protoc", "-I", HERE, "--python_out=" + out_dir, "--include_imports",
                    "--descriptor_set_out=" + os.path.join(out_dir, "greeter.pb"), "greeter.proto"], check=True)


def load(out_dir):
    sys.path.insert(0, out_dir)
    import greeter_pb2  # noqa: E402 (generated at run time)
    return greeter_pb2


def serve(port, variant, pb):
    import grpc

    candidate = variant == "candidate"

    def reply(message, index=0, tags=(), mood=pb.HAPPY):
        return pb.HelloReply(message=message, index=index, tags=list(tags), mood=mood, trace_id=uuid.uuid4().hex)

    def say_hello(request, context):
        greeting = "Hi" if candidate and request.name == "field" else "Hello"
        return reply("%s, %s" % (greeting, request.name), tags=["a", "b"])

    def list_greetings(request, context):
        count = request.count + (1 if candidate and request.name == "count" else 0)
        for i in range(count):
            yield reply("greeting %d for %s" % (i, request.name), index=i)

    def collect_names(request_iterator, context):
        names = [r.name for r in request_iterator]
        return reply("collected " + ",".join(names), index=len(names), tags=names)

    def chat(request_iterator, context):
        for i, r in enumerate(request_iterator):
            yield reply("echo " + r.name, index=i, mood=pb.GRUMPY if r.count < 0 else pb.HAPPY)

    def lookup(request, context):
        if request.name == "missing":
            if candidate:
                context.abort(grpc.StatusCode.INTERNAL, "lookup backend failed")
            context.abort(grpc.StatusCode.NOT_FOUND, "no such name: missing")
        return reply("found " + request.name)

    ser = pb.HelloReply.SerializeToString
    de = pb.HelloRequest.FromString
    handlers = {
        "SayHello": grpc.unary_unary_rpc_method_handler(say_hello, de, ser),
        "ListGreetings": grpc.unary_stream_rpc_method_handler(list_greetings, de, ser),
        "CollectNames": grpc.stream_unary_rpc_method_handler(collect_names, de, ser),
        "Chat": grpc.stream_stream_rpc_method_handler(chat, de, ser),
        "Lookup": grpc.unary_unary_rpc_method_handler(lookup, de, ser),
    }
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("doppel.test.Greeter", handlers),))
    server.add_insecure_port("127.0.0.1:%d" % port)
    server.start()
    print("serving %s on %d" % (variant, port), flush=True)
    server.wait_for_termination()


def call(port, rounds, pb):
    import grpc

    channel = grpc.insecure_channel("127.0.0.1:%d" % port)
    grpc.channel_ready_future(channel).result(timeout=10)
    ser = pb.HelloRequest.SerializeToString
    de = pb.HelloReply.FromString
    path = "/doppel.test.Greeter/"
    say_hello = channel.unary_unary(path + "SayHello", ser, de)
    list_greetings = channel.unary_stream(path + "ListGreetings", ser, de)
    collect_names = channel.stream_unary(path + "CollectNames", ser, de)
    chat = channel.stream_stream(path + "Chat", ser, de)
    lookup = channel.unary_unary(path + "Lookup", ser, de)
    for _ in range(rounds):
        for name in ("same", "field"):
            print("SayHello", name, say_hello(pb.HelloRequest(name=name)).message)
        for name, count in (("same", 3), ("count", 2)):
            print("ListGreetings", name, len(list(list_greetings(pb.HelloRequest(name=name, count=count)))))
        print("CollectNames", collect_names(iter([pb.HelloRequest(name=n) for n in ("x", "y", "z")])).message)
        print("Chat", len(list(chat(iter([pb.HelloRequest(name=n, count=c) for n, c in (("p", 1), ("q", -1))])))))
        for name in ("here", "missing"):
            try:
                print("Lookup", name, lookup(pb.HelloRequest(name=name)).message)
            except grpc.RpcError as e:
                print("Lookup", name, e.code().name)
    channel.close()


def main():
    command = sys.argv[1]
    if command == "generate":
        generate(sys.argv[2])
        return
    out_dir = os.environ.get("GREETER_PB_DIR") or os.path.join(os.environ.get("TMPDIR", "/tmp"), "greeter-pb-%d" % os.getpid())
    if not os.path.exists(os.path.join(out_dir, "greeter_pb2.py")):
        generate(out_dir)
    pb = load(out_dir)
    if command == "serve":
        serve(int(sys.argv[2]), sys.argv[3], pb)
    elif command == "call":
        call(int(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else 1, pb)
    else:
        sys.exit("unknown command " + command)


if __name__ == "__main__":
    main()
