"""The driving env's traffic, simulated by ``highway-env``: the four-lane highway, the ego car (a kinematic
bicycle with pedal and grip limits) and the IDM/MOBIL vehicles spawned around it at each reset."""

from __future__ import annotations

import math

import numpy as np
from highway_env.road.lane import LineType, StraightLane
from highway_env.road.road import Road, RoadNetwork
from highway_env.vehicle.behavior import IDMVehicle
from highway_env.vehicle.kinematics import Vehicle

# Road and traffic: RL-ViGen's highway scenario on CARLA's Town04.
LANES, LANE_WIDTH, SHOULDER = 4, 3.5, 1.5
ROAD_LENGTH = 5000.0
START_X = 250.0  # the ego starts here every episode, at rest (RL-ViGen's highway scenario: speed 0)
SPEED_LIMIT = 25.0  # 90 km/h, Town04's highway
TRAFFIC_SPEEDS = (15.0, 20.0)  # CARLA's traffic manager drives 30% under the limit (17.5 m/s)
NEARBY, NEARBY_RANGE = 8, 40.0  # RL-ViGen: num_other_cars_nearby spawned within +-40 m of the ego
TRAFFIC_RANGE = (-150.0, 850.0)  # the other vehicles, along the road around the start
MIN_GAP = 10.0  # centre to centre in one lane (5 m between bumpers)

# Ego car: a Lincoln MKZ-sized kinematic bicycle (highway-env) with pedal and grip limits.
EGO_MASS = 1800.0  # kg, for the collision impulse
EGO_MAX_SPEED = 30.0  # m/s
THROTTLE_ACC, BRAKE_DEC = 3.5, 8.0  # m/s^2 at full pedal
MAX_STEER = 0.6  # rad of front-wheel angle at low speed
MAX_LATERAL_ACC = 8.0  # m/s^2, tyre grip: limits the wheel angle at speed


def steering_limit(speed: float) -> float:
    """Largest front-wheel angle (rad) at ``speed``: the lock at low speed, tyre grip at high speed.

    In highway-env's bicycle model the lateral acceleration is v^2 sin(beta) / (L/2) with
    tan(beta) = tan(delta) / 2; capping it at MAX_LATERAL_ACC keeps full steering a hard but drivable turn.
    """
    sin_beta = min(1.0, MAX_LATERAL_ACC * (Vehicle.LENGTH / 2) / max(speed, 1e-3) ** 2)
    return min(MAX_STEER, math.atan(2 * math.tan(math.asin(sin_beta))))


class StraightRoad(Road):
    """highway-env's ``Road`` with its neighbour and collision searches vectorised; same rules, straight lanes.

    ``Road.neighbour_vehicles`` and ``Road.step`` compare every pair of the 41 vehicles in Python, which cost
    more than rendering. Positions only change in ``step``, so ``act`` caches them once per frame.
    """

    _positions: np.ndarray | None = None

    def act(self) -> None:
        self._positions = np.array([v.position for v in self.vehicles])
        self._index = {id(v): i for i, v in enumerate(self.vehicles)}
        try:
            super().act()
        finally:
            self._positions = None

    def neighbour_vehicles(self, vehicle: Vehicle, lane_index: tuple | None = None) -> tuple:
        lane_index = lane_index or vehicle.lane_index
        if self._positions is None or self.objects or not lane_index:
            return super().neighbour_vehicles(vehicle, lane_index)
        lane = self.network.get_lane(lane_index)
        delta = self._positions - lane.start
        s_all, lateral = delta @ lane.direction, delta @ lane.direction_lateral
        s = lane.local_coordinates(vehicle.position)[0]
        on = (np.abs(lateral) <= lane.width / 2 + 1) & (s_all >= -lane.VEHICLE_LENGTH)
        on &= s_all < lane.length + lane.VEHICLE_LENGTH  # the same test as AbstractLane.on_lane(margin=1)
        if id(vehicle) in self._index:
            on[self._index[id(vehicle)]] = False
        ahead, behind = np.flatnonzero(on & (s_all >= s)), np.flatnonzero(on & (s_all < s))
        front = self.vehicles[ahead[np.argmin(s_all[ahead])]] if ahead.size else None
        rear = self.vehicles[behind[np.argmax(s_all[behind])]] if behind.size else None
        return front, rear

    def step(self, dt: float) -> None:
        if self.objects:
            return super().step(dt)
        for vehicle in self.vehicles:
            vehicle.step(dt)
        positions = np.array([v.position for v in self.vehicles])
        diagonal = np.array([v.diagonal for v in self.vehicles])
        reach = np.array([v.speed for v in self.vehicles]) * dt
        distance = np.linalg.norm(positions[:, None] - positions[None], axis=-1)
        # RoadObject._is_colliding's spherical pre-check, for all pairs at once; survivors get the exact test
        close = distance <= (diagonal[:, None] + diagonal[None]) / 2 + reach[:, None]
        for i, j in zip(*np.nonzero(np.triu(close, 1)), strict=True):
            self.vehicles[i].handle_collisions(self.vehicles[j], dt)


class EgoCar(Vehicle):
    """highway-env's kinematic car without reverse and with a top speed (CARLA's ego never reverses)."""

    MAX_SPEED, MIN_SPEED = EGO_MAX_SPEED, 0.0

    def step(self, dt: float) -> None:
        super().step(dt)
        self.speed = float(np.clip(self.speed, 0.0, EGO_MAX_SPEED))


def lane_y(lane: int) -> float:
    """highway-env's y of a lane's centre line (lane 0 at y = 0)."""
    return lane * LANE_WIDTH


RAIL_Y = (lane_y(0) - LANE_WIDTH / 2 - SHOULDER, lane_y(LANES - 1) + LANE_WIDTH / 2 + SHOULDER)  # the guard rails


def highway_network() -> RoadNetwork:
    """The straight four-lane highway, ROAD_LENGTH long, with solid edge lines and dashed lane lines."""
    lanes = RoadNetwork()
    for lane in range(LANES):
        lines = (LineType.CONTINUOUS_LINE if lane == 0 else LineType.STRIPED,
                 LineType.CONTINUOUS_LINE if lane == LANES - 1 else LineType.NONE)
        lanes.add_lane("a", "b", StraightLane([0.0, lane_y(lane)], [ROAD_LENGTH, lane_y(lane)],
                                              width=LANE_WIDTH, line_types=lines, speed_limit=SPEED_LIMIT))
    return lanes


def spawn_traffic(network: RoadNetwork, vehicles: int,
                  rng: np.random.Generator) -> tuple[StraightRoad, EgoCar, list[IDMVehicle]]:
    """The ego at START_X in a random lane; 8 vehicles within +-40 m of it, the rest along the road."""
    road = StraightRoad(network, np_random=np.random.RandomState(int(rng.integers(2**31))))
    ego_lane = int(rng.integers(LANES))
    ego = EgoCar(road, [START_X, lane_y(ego_lane)], heading=0.0, speed=0.0)
    road.vehicles.append(ego)
    occupied = [(ego_lane, START_X)]
    traffic = []
    for k in range(vehicles):
        low, high = (-NEARBY_RANGE, NEARBY_RANGE) if k < NEARBY else TRAFFIC_RANGE
        for _ in range(1000):
            lane, x = int(rng.integers(LANES)), START_X + rng.uniform(low, high)
            if all(abs(x - ox) >= MIN_GAP for ol, ox in occupied if ol == lane):
                break
        else:
            raise RuntimeError(f"no free place for vehicle {k} between {low} and {high} m of the start")
        occupied.append((lane, x))
        car = IDMVehicle(road, [x, lane_y(lane)], heading=0.0, speed=0.0,
                         target_speed=float(rng.uniform(*TRAFFIC_SPEEDS)))
        car.randomize_behavior()
        road.vehicles.append(car)
        traffic.append(car)
    return road, ego, traffic
