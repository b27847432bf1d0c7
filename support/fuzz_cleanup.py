"""Drops what one run of support/fuzz made on the shared servers: its event-store and
read-model databases and its JetStream stream, so that repeated runs (one per ./dev test) do
not pile them up. Names and servers come from the environment support/fuzz gives the services.
"""

import asyncio
import os

import nats
import nats.js.errors
import pymongo

MONGODB_URI = os.environ.get("MONGODB_URI", "mongodb://127.0.0.1:37017/?directConnection=true")
NATS_URL = os.environ.get("NATS_URL", "nats://127.0.0.1:34222")


async def delete_stream(name):
    client = await nats.connect(NATS_URL.split(",")[0])
    try:
        await client.jetstream().delete_stream(name)
    except nats.js.errors.NotFoundError:
        pass
    finally:
        await client.close()


def main():
    with pymongo.MongoClient(MONGODB_URI) as client:
        for name in (os.environ["MONGODB_DB"], os.environ["MONGODB_READ_MODELS_DB"]):
            client.drop_database(name)
    asyncio.run(delete_stream(os.environ["SIMPLEPRO_NATS_STREAM"]))


if __name__ == "__main__":
    main()
