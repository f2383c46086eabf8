"""KServe's V2 gRPC protocol (`grpc_predict_v2.proto`, Apache-2.0) and its generated Python modules.

>>> from maestrale.serving.proto import grpc_predict_v2_pb2 as pb  # needs maestrale[grpc]  # doctest: +SKIP
>>> pb.ServerLiveResponse(live=True).live  # doctest: +SKIP
True

The `_pb2*` modules are committed, so installing needs no build step. They were generated with
grpcio-tools 1.81.1 (libprotoc 33.5, protobuf 6.33.5), from the repository's `src` folder:

    python -m grpc_tools.protoc -Isrc --python_out=src --pyi_out=src --grpc_python_out=src \\
        src/maestrale/serving/proto/grpc_predict_v2.proto

and then one line of `grpc_predict_v2_pb2.py` edited: its descriptors go into a pool of their own
instead of protobuf's default one, where tritonclient.grpc registers its own `inference` package
(the same message names): both can then live in one process (a test, a client that also serves).
"""
