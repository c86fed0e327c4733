import math

import pytest

from core.vehicle import VehicleParams
from sim.vehicle_model import BicycleState, step_bicycle

NO_LAG = VehicleParams(accel_lag_s=0.0, steer_lag_s=0.0, max_steer_rate_rps=10.0, max_jerk_mps3=100.0)


def run(state, accel, steer, steps, dt=0.01, params=NO_LAG):
    for _ in range(steps):
        state = step_bicycle(state, accel, steer, dt, params)
    return state


def test_steady_turn_radius_is_wheelbase_over_tan_steer():
    steer = 0.1
    radius = NO_LAG.wheelbase_m / math.tan(steer)
    state = run(BicycleState(0.0, 0.0, 0.0, 10.0, 0.0, steer), 0.0, steer, 500)
    # Turning left from the origin heading +x: the centre is at (0, R); every point lies on the circle.
    assert math.hypot(state.x_m, state.y_m - radius) == pytest.approx(radius, rel=1e-9)
    assert state.yaw_rad == pytest.approx(math.remainder(10.0 * 5.0 / radius, 2 * math.pi), abs=1e-9)


def test_exact_arc_independent_of_step_size():
    a = run(BicycleState(0.0, 0.0, 0.0, 15.0, 0.0, 0.2), 0.0, 0.2, 100, dt=0.01)
    b = run(BicycleState(0.0, 0.0, 0.0, 15.0, 0.0, 0.2), 0.0, 0.2, 1, dt=1.0)
    assert (a.x_m, a.y_m, a.yaw_rad) == pytest.approx((b.x_m, b.y_m, b.yaw_rad), abs=1e-9)


def test_actuator_limits_and_lag():
    p = VehicleParams()
    s = step_bicycle(BicycleState(0, 0, 0, 10.0, 0.0, 0.0), -50.0, 2.0, 0.01, p)
    assert s.a_mps2 >= -p.max_jerk_mps3 * 0.01 - 1e-12  # jerk limit bounds the first step
    assert abs(s.steer_rad) <= p.max_steer_rate_rps * 0.01 + 1e-12
    s = run(BicycleState(0, 0, 0, 30.0, 0.0, 0.0), -50.0, 2.0, 300, params=p)
    assert s.steer_rad == pytest.approx(p.max_steer_rad)
    lagged = step_bicycle(BicycleState(0, 0, 0, 10.0, 0.0, 0.0), 1.0, 0.0, 0.01, p)
    assert lagged.a_mps2 == pytest.approx(1.0 - math.exp(-0.01 / p.accel_lag_s))


def test_braking_stops_without_reversing():
    s = run(BicycleState(0, 0, 0, 2.0, 0.0, 0.0), -8.0, 0.0, 300, params=VehicleParams())
    assert s.v_mps == 0.0 and s.a_mps2 == 0.0
    assert 0.0 < s.x_m < 2.0  # covered the stopping distance, then stayed
    again = run(s, -8.0, 0.0, 100)
    assert again.x_m == s.x_m


@pytest.mark.parametrize("accel, steer, dt", [(math.nan, 0.0, 0.01), (0.0, math.inf, 0.01), (0.0, 0.0, 0.0)])
def test_rejects_bad_input(accel, steer, dt):
    with pytest.raises(ValueError):
        step_bicycle(BicycleState(0, 0, 0, 1.0, 0.0, 0.0), accel, steer, dt, VehicleParams())
