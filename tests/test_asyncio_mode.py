import asyncio


async def test_async_tests_run_on_a_real_loop():
    assert asyncio.get_running_loop().is_running()
